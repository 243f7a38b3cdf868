"""Where dataset files live: the writable cache, the read-only mirror, and the download.

A dataset folder ``<family>/<dir_name>`` (PyG's layout, e.g. ``Planetoid/Cora/raw/...``) is
looked up in this order:

1. the writable cache ``root`` (``data.root``, else env ``GDEPTH_DATA``, else
   ``$XDG_CACHE_HOME/gdepth`` or ``~/.cache/gdepth``);
2. the read-only ``mirror`` (``data.mirror``, else env ``GDEPTH_DATA_MIRROR``): its files are
   copied into the cache; nothing is ever written into the mirror;
3. the library's own download (PyG / OGB), with a short socket timeout; never when the
   environment sets ``GDEPTH_OFFLINE`` (to anything but ``0``), e.g. on cluster nodes without
   internet or in tests.

Steps 2 and 3 work in a staging folder next to the target and publish it with one atomic
``rename``, so a failed or interrupted attempt never leaves a half-filled cache folder, and
two processes preparing the same dataset at once do not corrupt each other.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from gdepth.data.graph import DatasetUnavailable

T = TypeVar("T")

#: Seconds a download may wait on one socket operation before it is abandoned.
DOWNLOAD_TIMEOUT_S = 30.0

_FIX = "set GDEPTH_DATA_MIRROR to a folder in PyG's raw layout or run once online"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The writable cache folder: ``root``, else ``$GDEPTH_DATA``, else a user cache folder."""
    if root:
        return Path(root).expanduser()
    if os.environ.get("GDEPTH_DATA"):
        return Path(os.environ["GDEPTH_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "gdepth"


def resolve_mirror(mirror: str | os.PathLike[str] | None) -> Path | None:
    """The read-only mirror folder: ``mirror``, else ``$GDEPTH_DATA_MIRROR``, else ``None``."""
    value = mirror or os.environ.get("GDEPTH_DATA_MIRROR")
    return Path(value).expanduser() if value else None


def is_complete(folder: Path, required: Sequence[str]) -> bool:
    """Whether every path in ``required`` (relative to ``folder``) is a non-empty file."""
    return all((folder / rel).is_file() and (folder / rel).stat().st_size > 0 for rel in required)


def probe(url: str, seconds: float) -> str | None:
    """Try a TCP connection to ``url``'s host (or the configured proxy) within ``seconds``.

    Runs in a daemon thread so that even a hanging DNS lookup cannot block the caller.
    Returns ``None`` if the host is reachable, else a short reason.
    """
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme)
    parts = urllib.parse.urlsplit(proxy or url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=seconds).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"cannot reach {host}:{port}: {_short(exc)}")

    thread = threading.Thread(target=connect, daemon=True, name="gdepth-probe")
    thread.start()
    thread.join(seconds + 1.0)
    return outcome[0] if outcome else f"cannot reach {host}:{port} within {seconds:g} s"


@contextmanager
def download_timeouts(seconds: float) -> Iterator[None]:
    """Bound each network wait of a download to ``seconds``.

    Covers ``urllib`` (Coauthor, Amazon, OGB) through the default socket timeout and
    ``fsspec``'s aiohttp client (Planetoid's ``fs.cp``) through ``fsspec.config.conf``.
    """
    import fsspec.config

    old_timeout = socket.getdefaulttimeout()
    old_conf = {p: fsspec.config.conf.get(p) for p in ("http", "https")}
    socket.setdefaulttimeout(seconds)
    try:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)
        for proto in old_conf:
            conf = dict(fsspec.config.conf.get(proto) or {})
            conf["client_kwargs"] = {**conf.get("client_kwargs", {}), "timeout": timeout}
            fsspec.config.conf[proto] = conf
    except ImportError:  # no aiohttp: fsspec cannot do http at all; nothing to bound
        pass
    try:
        yield
    finally:
        socket.setdefaulttimeout(old_timeout)
        for proto, conf in old_conf.items():
            if conf is None:
                fsspec.config.conf.pop(proto, None)
            else:
                fsspec.config.conf[proto] = conf


def copy_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` without ``processed/`` and without the source's permissions.

    ``shutil.copytree`` would copy the mirror's read-only mode bits, and PyG could then not
    write ``processed/`` into the copy.
    """
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if rel.parts[0] == "processed":
            continue
        if path.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst / rel)


def prepare(
    key: str,
    family: str,
    dir_name: str,
    required: Sequence[str],
    root: Path,
    mirror: Path | None,
    build: Callable[[Path], T],
    url: str | None = None,
) -> T:
    """Make ``<root>/<family>/<dir_name>`` complete, then return ``build(<root>/<family>)``.

    Args:
        key: the registry key, for messages.
        family, dir_name: the dataset's folder, e.g. ``"Planetoid"``, ``"Cora"``.
        required: files (relative to the dataset folder) whose presence means "raw files here".
        root: the writable cache. mirror: the read-only mirror, or ``None``.
        build: constructs the library's dataset class on a family folder; it processes the
            raw files (and downloads them if absent).
        url: where the download comes from; its host is probed first so that an offline
            machine fails within :data:`DOWNLOAD_TIMEOUT_S` instead of hanging.

    Raises:
        DatasetUnavailable: not in the cache, not in the mirror, and the download failed.
    """
    family_root = root / family
    target = family_root / dir_name
    if is_complete(target, required):
        return build(family_root)
    source = mirror / family / dir_name if mirror is not None else None
    from_mirror = source is not None and is_complete(source, required)
    family_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dir_name}.staging-", dir=family_root))
    try:
        if from_mirror:
            assert source is not None
            copy_tree(source, staging / dir_name)
            build(staging)
        elif os.environ.get("GDEPTH_OFFLINE", "") not in ("", "0"):
            raise DatasetUnavailable(_unavailable(key, target, source,
                                                  "downloads are off: GDEPTH_OFFLINE is set"))
        else:
            unreachable = probe(url, DOWNLOAD_TIMEOUT_S) if url else None
            if unreachable:
                raise DatasetUnavailable(_unavailable(key, target, source, unreachable))
            try:
                with download_timeouts(DOWNLOAD_TIMEOUT_S):
                    build(staging)
            except Exception as exc:
                if is_complete(staging / dir_name, required):
                    raise  # the files came; processing failed: not an availability problem
                raise DatasetUnavailable(_unavailable(key, target, source, _short(exc))) from exc
        _publish(staging / dir_name, target, required)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return build(family_root)


def _publish(staged: Path, target: Path, required: Sequence[str]) -> None:
    """Move the staged folder into place; keep a complete one another process put there."""
    if target.exists():
        if is_complete(target, required):
            return
        shutil.rmtree(target)  # an incomplete leftover in our own cache would block us
    try:
        staged.rename(target)
    except OSError:
        if not is_complete(target, required):
            raise


def _unavailable(key: str, target: Path, source: Path | None, reason: str) -> str:
    mirror_part = (
        f"not in mirror {source}" if source is not None else "no mirror set (GDEPTH_DATA_MIRROR)"
    )
    return (
        f"dataset {key!r} is not available: not in cache {target}, {mirror_part}, "
        f"and the download failed ({reason}); {_FIX}"
    )


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
