"""Protocol presets that reach beyond training: ``train.dataset_overrides`` and
``train.model_overrides``.

A paper's protocol fixes more than the optimizer: its split (NodeNorm's 20 per class / 500 /
1000 on Planetoid sets but 20 / 30 / rest on Coauthor CS), its feature preprocessing, its
adjacency normalization, its hidden width and dropout. A ``configs/train/<preset>.yaml`` states
them as data, keyed by dataset (or model) name, ``all`` for every one::

    dataset_overrides:
      all:       {normalize_features: true}
      cora:      {split: random_per_class, val_size: 500, test_size: 1000, num_splits: 50}
    model_overrides:
      all:       {hidden: 64, dropout: 0.8, dropout_layers: io}

:func:`apply` merges ``all`` and then the named entry into ``dataset`` / ``model`` before the
cell's identity is hashed, so the record holds the configuration really used. The preset wins
over the group's own YAML; a value given on the command line (``model.hidden=256``,
``dataset.normalize_features=false``) wins over the preset, as any command-line value wins in
Hydra: :func:`explicit_keys` names those keys and :func:`apply` leaves them alone. The preset's
entry can be changed too (``train.model_overrides.all.dropout=0.5``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

WILDCARD = "all"  # a plain key, so `train.model_overrides.all.dropout=0.5` works in Hydra
SECTIONS = {"dataset": "dataset_overrides", "model": "model_overrides"}


def explicit_keys(overrides: Iterable[str]) -> set[str]:
    """The dotted keys a command line sets: ``["model.hidden=256", "+dataset.x=1", "depth=4"]``
    → ``{"model.hidden", "dataset.x", "depth"}`` (group choices such as ``model=gcn`` name
    ``model``, which no preset entry is; deletions ``~key`` set nothing)."""
    keys = set()
    for text in overrides:
        key, sep, _ = text.partition("=")
        if sep and not key.startswith("~"):
            keys.add(key.lstrip("+").partition("@")[0])
    return keys


def apply(config: dict[str, Any], explicit: Iterable[str] = ()
          ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(config with the preset's overrides merged in, {"dataset": {...}, "model": {...}})``.

    ``explicit``: dotted keys set on the command line (:func:`explicit_keys`); the preset
    does not touch them, so ``model.hidden=256`` beats ``model_overrides.all.hidden: 64``.

    Raises:
        ValueError: an override names a key the dataset / model config does not have (one
            line, with the valid keys).
    """
    train = config.get("train") or {}
    explicit = set(explicit)
    applied: dict[str, dict[str, Any]] = {}
    for section, field in SECTIONS.items():
        overrides = train.get(field) or {}
        target = config[section]
        values: dict[str, Any] = {}
        for entry in (WILDCARD, target["name"]):
            for key, value in (overrides.get(entry) or {}).items():
                if key not in target or key == "name":
                    valid = ", ".join(k for k in target if k != "name")
                    raise ValueError(f"train.{field}.{entry}.{key}: {section} "
                                     f"{target['name']!r} has no key {key!r}; valid: {valid}")
                if f"{section}.{key}" not in explicit:
                    values[key] = value
        if values:
            applied[section] = values
    if not applied:
        return config, {}
    config = copy.deepcopy(config)
    for section, values in applied.items():
        config[section].update(values)
    return config, applied
