"""One writer per machine folder: each install's identity, and a lease no crashed holder keeps forever.

Two computers with the same name (the default machine name is the host name) would share one machine
folder and move each other's sessions into ``versions/`` on every sync. So each install keeps a random
identity locally (``install-id`` in the app's data folder) and writes it into the machine folder on
first use (``owner.json``, created exclusively); a sync that finds another identity there refuses, with
one line naming ``machineName``. A folder written before identities existed is adopted. Writers of one
identity never overlap on one computer (the local sync lock); across computers the ``writer.lease`` file
holds off a second writer until it is released, or expires (so a crashed holder cannot keep it).
Runs on the worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from app.backup import untrusted as u
from app.errors import BackupDamaged, FailureKind, SyncFailed
from app.fsutil import PRIVATE_FILE, atomic_write_bytes, flush, make_private_dirs

OWNER = "owner.json"
LEASE = "writer.lease"
FORMAT = "opencode-session-backup-owner/1"
LEASE_SECONDS = 15 * 60
_ID_BYTES = 16


def install_id(data_dir: Path) -> str:
    """This install's identity, made (0600) on first use."""
    path = data_dir / "install-id"
    with contextlib.suppress(FileNotFoundError, UnicodeDecodeError):
        text = path.read_text().strip()
        if len(text) == 2 * _ID_BYTES and all(c in "0123456789abcdef" for c in text):
            return text
    make_private_dirs(data_dir)
    new = secrets.token_hex(_ID_BYTES)
    atomic_write_bytes(path, new.encode())
    return new


@dataclass(frozen=True)
class Claim:
    """What ``owner.json`` or ``writer.lease`` says."""

    install: str
    host: str
    until: datetime | None = None


def claim_folder(machine_dir: Path, machine: str, me: str) -> None:
    """Make sure ``machine_dir`` belongs to this install (adopting a folder that has no owner yet);
    raise SyncFailed (FATAL: retrying cannot help) when it belongs to another one."""
    path = machine_dir / OWNER
    doc = {"format": FORMAT, "install": me, "host": socket.gethostname()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), PRIVATE_FILE)
    except FileExistsError:
        owner = _read(path)
        if owner.install != me:
            raise SyncFailed(
                f"the backup folder {machine_dir} belongs to another install (on computer "
                f"{owner.host!r}): two computers use the machineName {machine!r}; give this one its own "
                '(--machine-name, or "machineName" in session-backup.json)',
                FailureKind.FATAL,
            ) from None
        return
    with os.fdopen(fd, "wb") as fh:
        fh.write(json.dumps(doc).encode())
        fh.flush()
        flush(fh.fileno())


def take_lease(machine_dir: Path, me: str, now: datetime) -> None:
    """Hold the writer lease for ``LEASE_SECONDS`` (renewed by calling again); raise SyncFailed (LOCKED,
    retried) while another install holds one that has not expired."""
    path = machine_dir / LEASE
    with contextlib.suppress(FileNotFoundError, BackupDamaged):  # unreadable: a torn write, take it over
        held = _read(path)
        if held.install != me and held.until is not None and held.until > now:
            raise SyncFailed(
                f"another install (on computer {held.host!r}) is writing this backup folder until "
                f"{held.until.astimezone():%H:%M}; retrying",
                FailureKind.LOCKED,
                LEASE,
            )
    until = now + timedelta(seconds=LEASE_SECONDS)
    doc = {"format": FORMAT, "install": me, "host": socket.gethostname(), "until": until.isoformat()}
    atomic_write_bytes(path, json.dumps(doc).encode(), fsync=False)  # a torn lease reads as none


def release_lease(machine_dir: Path, me: str) -> None:
    with contextlib.suppress(FileNotFoundError, BackupDamaged):
        if _read(machine_dir / LEASE).install == me:
            (machine_dir / LEASE).unlink()


def _read(path: Path) -> Claim:
    doc = u.obj(u.parse_json(u.read_capped(path, 4096, path.name), path.name), path.name)
    if doc.get("format") != FORMAT:
        raise BackupDamaged(f"{path.name}: unknown format {u.short(doc.get('format'))}")
    until = doc.get("until")
    when = None
    if until is not None:
        try:
            when = datetime.fromisoformat(u.text(until, path.name, 64))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise BackupDamaged(f"{path.name} is damaged: not a time: {u.short(until)}")
    return Claim(
        u.text(doc.get("install"), path.name, 64), u.text(doc.get("host", "?"), path.name, 256), when
    )
