"""The one small interface every transfer engine implements.

The sync (``app.backup.sync``) decides *what* moves: it hands an engine a list of relative
paths that must be copied from ``src_root`` to ``dst_root``. It has already kept the old
content of any destination file that will be replaced in ``versions/`` (a hard link or a copy)
and handles deletions itself, so an engine only copies. Every engine must make each file
appear atomically (temp name + rename, never writing into the existing file: its old inode is
the version kept) and give new files 0600 / folders 0700 on Unix.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.errors import FailureKind

# Where an engine that cannot rename files one by one (robocopy) lands a job's files before moving them
# into place: ``.incoming-<pid>`` in the destination; a killed sync's one is swept by the next full sync.
INCOMING_PREFIX = ".incoming-"


@dataclass(frozen=True)
class CopyJob:
    """Copy ``paths`` (relative, POSIX separators, no '..') from ``src_root`` into ``dst_root``. ``expect``:
    the (size, sha256) the caller planned for a path, which the manifest will record for it."""

    src_root: Path
    dst_root: Path
    paths: tuple[str, ...]
    expect: Mapping[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class CopyResult:
    """What an engine did. ``failed`` maps a relative path to the reason it was not copied. ``synced``:
    each copied file's data reached the disk (fsync) before it was renamed into place; rsync and robocopy
    leave that to the caller, which must not commit a manifest naming a file still only in the cache.
    A copied path that ``CopyJob.expect`` names holds that size and sha256: every engine checks it (one
    whose source changed since the caller planned it is failed with ``CHANGED``)."""

    copied: tuple[str, ...]
    failed: dict[str, str] = field(default_factory=dict)
    kind: FailureKind | None = None
    detail: str = ""
    synced: bool = False

    @property
    def ok(self) -> bool:
        return self.kind is None and not self.failed


class Engine(Protocol):
    """A way of copying files to the destination. ``copy`` runs on the worker thread."""

    name: str

    def copy(self, job: CopyJob, cancel: threading.Event) -> CopyResult:
        """Copy every path of ``job``; stop early (kind FATAL, detail 'cancelled') when ``cancel`` is set."""
        ...
