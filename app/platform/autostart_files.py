"""A small file writer shared by the file-based autostart backends."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from app.platform.autostart import AutostartError


def write_entry(path: Path, data: bytes) -> None:
    """Create the folder if needed and replace ``path`` with ``data`` atomically (mode 0644)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise AutostartError(f"cannot write {path}: {exc.strerror or exc}") from exc


def remove_entry(path: Path) -> None:
    """Delete ``path``; a missing file is fine."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise AutostartError(f"cannot remove {path}: {exc.strerror or exc}") from exc
