"""This install's local state: the last result (even when the destination was untouched) and the
lock that keeps two syncs (the service and a command line) from running at once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.errors import FailureKind, SyncFailed
from app.fsutil import atomic_write_bytes, make_private_dirs
from app.platform.lock import try_lock

LAST_RESULT = "last_result.json"


def save_last_result(state_dir: Path, result: dict[str, Any]) -> None:
    atomic_write_bytes(state_dir / LAST_RESULT, json.dumps(result, indent=1).encode(), fsync=False)


def load_last_result(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / LAST_RESULT).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def sync_lock(state_dir: Path) -> Iterator[None]:
    """Hold the sync lock for the block, or raise SyncFailed(LOCKED) when another sync holds it.

    The lock dies with its process, so a crash never leaves it stuck.
    """
    make_private_dirs(state_dir)
    fh = open(state_dir / "sync.lock", "a+b")  # noqa: SIM115 - held for the whole block
    try:
        if not try_lock(fh):
            raise SyncFailed(
                "another sync is running for this backup; try again when it finishes", FailureKind.LOCKED
            )
        yield
    finally:
        fh.close()
