"""Shared fixtures: the read-only dataset mirror beside the project and a writable cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def mirror() -> Path:
    """``../shared/datasets``: PyG's raw layout, read-only (tests never write into it)."""
    if not (MIRROR / "Planetoid" / "Cora" / "raw").is_dir():
        message = f"dataset mirror not found at <repo>/../shared/datasets ({MIRROR})"
        if os.environ.get("CI"):  # CI must test on the real data, never skip it silently
            pytest.fail(message)
        pytest.skip(message)
    return MIRROR


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One writable dataset cache for the whole test session (raw files copied in once)."""
    return tmp_path_factory.mktemp("gdepth-data")


@pytest.fixture()
def cli_env(mirror, data_cache) -> dict[str, str]:
    """Environment for ``gdepth`` subprocesses: mirror, shared cache, one thread, no downloads."""
    env = dict(os.environ)
    env.update(GDEPTH_DATA=str(data_cache), GDEPTH_DATA_MIRROR=str(mirror),
               OMP_NUM_THREADS="1", GDEPTH_OFFLINE="1")
    return env


@pytest.fixture(scope="session")
def composed_models() -> dict:
    """Every ``configs/model/<name>.yaml`` composed through Hydra with its typed schema, as the
    dataclass a cell hands on (gdepth.config.typed)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gdepth import config, models
    from gdepth.cli import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        composed = {name: compose("config", overrides=[f"model={name}", "name=x"]).model
                    for name in models.MODELS}
    return {name: config.group("model", OmegaConf.to_container(node, resolve=True))
            for name, node in composed.items()}


@pytest.fixture()
def float64():
    """Build and train in float64 (``torch.set_default_dtype``; restored after the test)."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)
