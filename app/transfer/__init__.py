"""Transfer engines: copy a list of files into the backup folder, atomically and privately.

``make_engine`` is the only place that looks at the platform and at what is installed:
robocopy on Windows, else rsync when it supports ``--files-from``, else plain Python.
Engine modules are imported only when chosen.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from app.errors import ConfigError
from app.host import HOST
from app.transfer.base import CopyJob, CopyResult, Engine
from app.transfer.classify import BENIGN_REASONS, CANCELLED, CHANGED, NOT_REGULAR, VANISHED

if TYPE_CHECKING:
    from app.transfer.runner import Runner

logger = logging.getLogger(__name__)

ENGINE_NAMES = ("auto", "rsync", "robocopy", "native")

__all__ = [
    "BENIGN_REASONS",
    "CANCELLED",
    "CHANGED",
    "ENGINE_NAMES",
    "NOT_REGULAR",
    "VANISHED",
    "CopyJob",
    "CopyResult",
    "Engine",
    "make_engine",
]


def make_engine(name: str = "auto", *, runner: Runner | None = None) -> Engine:
    """Build the engine called ``name`` (one of ``ENGINE_NAMES``); may run ``rsync --version``.

    ``auto`` pairs the external engine with the native one for small jobs (``hybrid.SplitEngine``).
    Raises ValueError for an unknown name and ConfigError when the named program is not
    installed. An rsync without ``--files-from`` (macOS openrsync) falls back to native.
    Call from any thread; the engine's ``copy`` then runs on the worker thread.
    """
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown transfer engine {name!r}; expected one of {', '.join(ENGINE_NAMES)}")
    if name == "native":
        return _native()
    on_windows = HOST.engine == "robocopy"
    if name == "robocopy" or (name == "auto" and on_windows):
        robocopy = shutil.which("robocopy") if on_windows else None
        if robocopy:
            return _split(_robocopy(robocopy, runner)) if name == "auto" else _robocopy(robocopy, runner)
        if name == "robocopy":
            raise ConfigError(
                "robocopy was chosen as the copy engine but is not available (it needs Windows)"
            )
        return _native()
    rsync = shutil.which("rsync")
    if rsync is None:
        if name == "rsync":
            raise ConfigError("rsync was chosen as the copy engine but is not installed")
        return _native()
    engine = _rsync(rsync, runner)
    if engine is None:
        return _native()
    return _split(engine) if name == "auto" else engine


def _split(big: Engine) -> Engine:
    """``auto``: the external engine for big jobs, Python for the one-or-two-file syncs (see hybrid.py)."""
    from app.transfer.hybrid import SplitEngine  # noqa: PLC0415 - an engine is imported only when chosen

    return SplitEngine(big, _native())


def _native() -> Engine:
    from app.transfer.native import NativeEngine  # noqa: PLC0415 - an engine is imported only when chosen

    return NativeEngine()


def _robocopy(binary: str, runner: Runner | None) -> Engine:
    from app.transfer.robocopy import RobocopyEngine  # noqa: PLC0415 - an engine is imported only when chosen

    return RobocopyEngine(binary=binary) if runner is None else RobocopyEngine(runner=runner, binary=binary)


def _rsync(binary: str, runner: Runner | None) -> Engine | None:
    """An rsync engine, or None when this rsync cannot take a list of files."""
    from app.transfer.rsync import RsyncEngine, detect_flavor  # noqa: PLC0415 - an engine is imported only when chosen
    from app.transfer.runner import run  # noqa: PLC0415 - an engine is imported only when chosen

    flavor = detect_flavor(runner or run, binary)
    if not (flavor.has_files_from and flavor.from0):
        logger.info("%s (%s) lacks --files-from/--from0; copying with Python instead", binary, flavor.name)
        return None
    logger.debug("using %s %s", binary, ".".join(map(str, flavor.version)))
    return RsyncEngine(runner=runner or run, flavor=flavor, binary=binary)
