"""Reading a machine folder of a remote: downloaded into a private folder of the cache, then read like any
backup folder, with the same checks (every byte of it is untrusted: other computers write the remote).

This is the one way the commands that read a backup reach a remote (``list``, ``restore``, ``verify``, the
agent tools; ``status`` reads this machine's mirror): :func:`view` hands out a local machine folder
holding what was asked for, and removes it afterwards. The index (``manifest.json`` and its shards) comes
first; the rest after; then ``manifest.json`` is read again: an upload that committed meanwhile makes the
view start over (at most three times), so a view is one committed state of the remote, as verify needs.
Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

from app.backup import manifest as mf
from app.backup.remote.listing import parse_listing
from app.backup.remote.site import RemoteSite
from app.errors import BackupDamaged, BackupMoved
from app.fsutil import make_private_dirs

logger = logging.getLogger(__name__)

TRIES = 3


class Parts(enum.Enum):
    """What a reader needs of a machine folder."""

    INDEX = "index"  # manifest.json and its shards
    LISTING = "listing"  # and versions/ (the last copies of deleted sessions): list, the restore picker
    SESSIONS = "sessions"  # and the session files: restoring sessions
    ALL = "all"  # everything (snapshots, storage/): verify, a full replace, the legacy restore


_INDEX = ("--include", f"/{mf.MANIFEST}", "--include", f"/{mf.SHARD_DIR}/**")
_REST = {
    Parts.INDEX: None,
    Parts.LISTING: ("--include", "/versions/**"),
    Parts.SESSIONS: ("--include", "/sessions/**", "--include", "/versions/**"),
    Parts.ALL: (
        "--exclude",
        f"/{mf.MANIFEST}",
        "--exclude",
        f"/{mf.SHARD_DIR}/**",
        "--exclude",
        "/damaged/**",
    ),
}


@contextlib.contextmanager
def view(
    site: RemoteSite, machine: str, parts: Parts, cancel: threading.Event | None = None
) -> Iterator[Path]:
    """A local copy of ``machine``'s folder on the remote (``parts`` of it), removed on exit. Raises
    BackupDamaged when the remote has no such folder, BackupMoved when uploads kept changing it, and
    TransferError when rclone fails."""
    cancel = cancel or threading.Event()
    root = site.cache / "views" / secrets.token_hex(8)
    try:
        for _attempt in range(TRIES):
            shutil.rmtree(root, ignore_errors=True)
            folder = root / machine
            make_private_dirs(folder)
            if _read(site, machine, folder, parts, cancel):
                yield folder
                return
            logger.info("%s changed while it was read; reading it again", site.spec.at(machine))
        raise BackupMoved(
            f"{site.spec.at(machine)} kept changing while it was read (uploads under way); try again"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _read(site: RemoteSite, machine: str, folder: Path, parts: Parts, cancel: threading.Event) -> bool:
    """Download ``parts`` of the remote's folder into ``folder``; False when it changed meanwhile."""
    where = site.spec.at(machine)
    site.client.download(where, folder, cancel, filters=_INDEX)
    head = folder / mf.MANIFEST
    empty = not head.is_file() and not any(folder.iterdir())
    if empty and not parse_listing(site.client.listing(where, cancel)):
        raise BackupDamaged(f"no backup for machine {machine!r} on {site.spec.text}")
    try:
        mf.load(folder, machine)
    except BackupMoved:  # shards named by a manifest committed as we read: read again
        return False
    rest = _REST[parts]
    if rest is None:
        return True
    site.client.download(where, folder, cancel, filters=rest)
    again = folder.parent / ".again"
    make_private_dirs(again)
    site.client.download(where, again, cancel, rels=[mf.MANIFEST])
    same = (again / mf.MANIFEST).is_file() == head.is_file() and (
        not head.is_file() or (again / mf.MANIFEST).read_bytes() == head.read_bytes()
    )
    shutil.rmtree(again, ignore_errors=True)
    return same
