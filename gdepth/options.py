"""Reading config values and naming bad ones, shared by every registry.

Builders take an omegaconf node, a plain mapping or any attribute object (tests pass
``SimpleNamespace``), so values are read through :func:`option`; a name that is not one of a
registry's keys is reported by :func:`unknown` in one line with the valid choices.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any


def option(cfg: Any, key: str, default: Any = None) -> Any:
    """Read ``cfg.key`` from a DictConfig, a mapping or any attribute object.

    A missing config, a missing key or a ``None`` value gives ``default``; an ``Enum`` value
    gives its ``.value`` (the typed config stores choices such as ``dropout_layers`` as enums).
    """
    if cfg is None:
        return default
    value = cfg.get(key, default) if isinstance(cfg, Mapping) else getattr(cfg, key, default)
    if value is None:
        return default
    return value.value if isinstance(value, Enum) else value


def unknown(kind: str, value: Any, choices: Any) -> ValueError:
    """The one-line error for a name that is not one of ``choices``."""
    return ValueError(f"unknown {kind} '{value}'; valid: {', '.join(sorted(choices))}")
