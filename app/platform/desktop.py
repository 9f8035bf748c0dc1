"""Show a file or folder with the desktop's own application: one function, the per-system choice inside."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from pathlib import Path

from app.host import HOST

logger = logging.getLogger(__name__)


def open_path(path: Path) -> None:
    """Open ``path`` in the file manager or default application; never blocks, never raises."""
    if HOST.opener == "startfile":
        try:
            getattr(os, "startfile")(path)  # Windows only  # noqa: B009 - absent elsewhere, for mypy too
        except OSError as exc:
            logger.error("cannot open %s: %s", path, exc)
    else:
        _run_opener(HOST.opener, path)


def _run_opener(opener: str, path: Path) -> None:
    try:
        proc = subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        logger.error("cannot open %s: %s", path, exc)
        return
    threading.Thread(target=proc.wait, name="opener", daemon=True).start()  # reap it, off the caller's thread
