"""Naming a bad value, shared by every registry: :func:`unknown`, in one line with the valid
choices."""

from __future__ import annotations

from typing import Any


def unknown(kind: str, value: Any, choices: Any) -> ValueError:
    """The one-line error for a name that is not one of ``choices``."""
    return ValueError(f"unknown {kind} '{value}'; valid: {', '.join(sorted(choices))}")
