"""A search space declared as data (``configs/search/<name>.yaml``) as Optuna distributions.

``space`` maps a dotted config key to ``{low, high[, log]}`` (a float range; an int range when
both bounds are ints) or ``{choices: [...]}``; ``models.<model>`` adds that model's own keys
(GCNII's α and λ, APPNP's α). :func:`check` refuses, in one line, what cannot be searched:
``trials`` < 1, a key the composed config does not have, ``depth`` or a seed (the depth is
what is compared; seeds are what the objective averages over), and an unknown ``pruner``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from gdepth.search import prune

# Keys a search may never set: the compared axis, the seeds, where and how a cell runs.
FORBIDDEN = ("depth", "seeds", "seed_range", "seeds_per_job", "name", "out_dir", "search")


class SearchError(ValueError):
    """A search that cannot run; the message is one line naming the bad value."""


def space_of(search: dict[str, Any], model: str) -> dict[str, dict[str, Any]]:
    """The cell's space: the common keys, then its model's own."""
    return {**(search.get("space") or {}), **((search.get("models") or {}).get(model) or {})}


def distribution(key: str, spec: Any) -> BaseDistribution:
    """One key's Optuna distribution, or SearchError naming what is wrong with its spec."""
    if not isinstance(spec, dict):
        raise SearchError(f"search.space.{key}: {spec!r} is not {{low, high[, log]}} or "
                          "{choices: [...]}")
    if "choices" in spec:
        choices = list(spec["choices"])
        if not choices:
            raise SearchError(f"search.space.{key}.choices is empty")
        return CategoricalDistribution(choices)
    if "low" not in spec or "high" not in spec:
        raise SearchError(f"search.space.{key}: needs low and high (or choices); got "
                          f"{', '.join(spec) or 'nothing'}")
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if not low < high or (log and low <= 0):
        raise SearchError(f"search.space.{key}: low {low} must be < high {high}"
                          + (" and > 0 with log: true" if log else ""))
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _has(config: dict[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check(search: dict[str, Any], config: dict[str, Any]) -> dict[str, BaseDistribution]:
    """The cell's distributions, after checking the search against the composed ``config``."""
    if int(search.get("trials", 0)) < 1:
        raise SearchError(f"search.trials={search.get('trials')}: must be a whole number >= 1")
    if int(search.get("seeds", 0)) < 1:
        raise SearchError(f"search.seeds={search.get('seeds')}: must be a whole number >= 1")
    if int(search.get("parallel", 0)) < 1:
        raise SearchError(f"search.parallel={search.get('parallel')}: must be >= 1")
    try:
        prune.check(search)
    except ValueError as err:
        raise SearchError(str(err)) from None
    space = space_of(search, config["model"]["name"])
    if not space:
        raise SearchError(f"search={search.get('name')} has an empty space for model "
                          f"{config['model']['name']}")
    out = {}
    for key, spec in space.items():
        head = key.split(".", 1)[0]
        if key in FORBIDDEN or head in FORBIDDEN or key.endswith(".seed"):
            raise SearchError(f"search.space: '{key}' cannot be searched (the depth is the "
                              "compared axis, seeds what the objective averages over)")
        if not _has(config, key):
            section = config.get(head) if isinstance(config.get(head), dict) else config
            valid = ", ".join(f"{head}.{k}" for k in section) if section is not config else \
                ", ".join(config)
            raise SearchError(f"search.space: the cell's config has no key '{key}'; valid: "
                              f"{valid}")
        out[key] = distribution(key, spec)
    return out


def overrides(params: dict[str, Any]) -> list[str]:
    """A trial's values as Hydra overrides (floats in full precision)."""
    return [f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]


def sampler(search: dict[str, Any], resumed_at: int = 0) -> optuna.samplers.BaseSampler:
    """TPE, seeded (Bergstra et al., NeurIPS 2011), after ``startup_trials`` random ones.

    ``resumed_at``: the trials the study already holds when this process opens it. A fresh
    study is seeded with ``sampler_seed``; a resumed one with a seed drawn from
    (``sampler_seed``, ``resumed_at``), so that it does not draw again the random values its
    first trials drew (the same seed restarts the same sequence: the trials after a resume
    repeated the first ones) and the same killed study still resumes the same way.
    """
    seed = int(search.get("sampler_seed", 0))
    if resumed_at:
        seed = int(np.random.SeedSequence([seed, int(resumed_at)]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=seed,
                                      n_startup_trials=int(search.get("startup_trials", 10)))
