"""Where gdepth's packaged files are: the ``configs/`` tree Hydra composes from."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    """The packaged ``configs/`` tree: inside the wheel, or beside the package in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise FileNotFoundError(f"gdepth's configs/ folder is missing next to {here}")
