"""One writer per machine folder: each install's identity, and a lease no crashed holder keeps forever.

Two computers with the same name (the default machine name is the host name) would share one machine
folder and move each other's sessions into ``versions/`` on every sync. So each install keeps a random
identity locally (``install-id`` in the app's data folder) and writes it into the machine folder on
first use (``owner.json``, created so that no reader ever sees it half written), with a salted hash of
this computer's own identity and account (:mod:`app.platform.machine_id`; the raw identity is never
written). A sync that finds another install there refuses, with one line naming ``machineName`` and
``opencode-backup adopt``, unless the hash says it is this very computer and account: then the install
id was lost (a reinstall, a wiped state folder) and the new install carries on in its own folder, with
one warning line. A folder written before identities existed is adopted.

Writers of one identity never overlap on one computer (the local sync lock); across computers the
``writer.lease`` file holds off a second writer until it is released, or expires (so a crashed holder
cannot keep it). A lease that ends more than one lease length ahead (a clock far off, or a hostile
file), one that cannot be read, and one that is a folder are damage: taken over with one warning line.
Runs on the worker thread (and the command line's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.backup import untrusted as u
from app.backup.aside import set_aside
from app.backup.guard import stamp
from app.errors import ADOPT_HINT, BackupDamaged, BackupMoved, FailureKind, SyncFailed
from app.fsutil import atomic_create, atomic_write_bytes, make_private_dirs

logger = logging.getLogger(__name__)

OWNER = "owner.json"
LEASE = "writer.lease"
FORMAT = "opencode-session-backup-owner/1"
LEASE_SECONDS = 15 * 60
CLOCK_SLACK = timedelta(minutes=1)  # two computers' clocks may differ this much without it being damage
_ID_BYTES = 16
_HASH_DOMAIN = b"opencode-session-backup computer/1\0"
_SALT = re.compile(r"^[0-9a-f]{32}$")

Identity = Callable[[], str | None]  # this computer and account (None: the system has no identity)


def no_identity() -> str | None:
    """An :data:`Identity` for a computer that cannot be told apart from another."""
    return None


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
    """What ``owner.json`` or ``writer.lease`` says. ``salt`` and ``computer``: the salted hash of the
    owner's computer and account ("" in a folder claimed before they were kept)."""

    install: str
    host: str
    until: datetime | None = None
    salt: str = ""
    computer: str = ""


def computer_hash(salt: str, identity: str) -> str:
    """The salted hash kept in owner.json: it tells this computer again, and nothing else about it."""
    return hashlib.sha256(_HASH_DOMAIN + salt.encode() + b"\0" + identity.encode()).hexdigest()


def _owner_doc(me: str, identity: str | None, salt: str | None = None) -> bytes:
    doc = {"format": FORMAT, "install": me, "host": socket.gethostname()}
    if identity is not None:
        salt = salt or secrets.token_hex(16)
        doc |= {"salt": salt, "computer": computer_hash(salt, identity)}
    return json.dumps(doc).encode()


def claim_folder(machine_dir: Path, machine: str, me: str, identity: Identity = no_identity) -> bool:
    """Make sure ``machine_dir`` belongs to this install (adopting a folder that has no owner yet, and
    taking over one this very computer and account claimed under a lost install id); raise SyncFailed
    (FOREIGN: retrying cannot help) when it belongs to another one, or its owner.json is damaged.
    Returns whether owner.json lacks this computer's hash (a folder claimed before they were kept)."""
    path = machine_dir / OWNER
    owner = _owner(path, machine_dir)
    if owner is None:
        try:
            atomic_create(path, _owner_doc(me, identity()))
            return False
        except FileExistsError:  # another install claimed it this very moment: its file is whole
            owner = _owner(path, machine_dir)
            if owner is None:
                raise SyncFailed(
                    f"{OWNER} in {machine_dir} came and went; retrying", FailureKind.LOCKED
                ) from None
    if owner.install == me:
        return not owner.computer
    mine = identity() if owner.computer else None
    if mine is not None and computer_hash(owner.salt, mine) == owner.computer:
        logger.warning(
            "this computer's install id changed (a reinstall, or its state folder was wiped): %s is this "
            "computer's own backup folder, carrying on in it",
            machine_dir,
        )
        atomic_write_bytes(path, _owner_doc(me, mine, owner.salt), commit=True)
        return False
    raise SyncFailed(
        f"the backup folder {machine_dir} belongs to another install (on computer {owner.host!r}): two "
        f"computers use the machineName {machine!r}; give this one its own (--machine-name, or "
        f'"machineName" in session-backup.json), or, if it is this computer\'s own folder (after a '
        f"reinstall), {ADOPT_HINT}",
        FailureKind.FOREIGN,
    )


def _owner(path: Path, machine_dir: Path) -> Claim | None:
    """owner.json (None: there is none); damage is a FOREIGN failure that names adopt."""
    try:
        return _read(path)
    except BackupMoved:
        return None
    except BackupDamaged as exc:
        raise SyncFailed(
            f"{exc} (in {machine_dir}); if this backup folder is this computer's, {ADOPT_HINT}",
            FailureKind.FOREIGN,
        ) from None


def read_claim(machine_dir: Path, name: str) -> Claim | None:
    """What ``name`` (OWNER or LEASE) says (None: there is none); BackupDamaged when it cannot be read."""
    try:
        return _read(machine_dir / name)
    except BackupMoved:
        return None


def adopt(machine_dir: Path, me: str, identity: Identity = no_identity) -> None:
    """Make ``machine_dir`` this install's, whoever owned it (the user confirmed it is this computer's):
    owner.json replaced in one atomic step."""
    atomic_write_bytes(machine_dir / OWNER, _owner_doc(me, identity()), commit=True)


@contextlib.contextmanager
def writing(machine_dir: Path, machine: str, me: str, identity: Identity, now: datetime) -> Iterator[None]:
    """Hold ``machine_dir`` for a write: claimed as this install's and its writer lease taken (see
    :func:`claim_folder` and :func:`take_lease` for what refuses); the lease is released after. An
    owner.json without this computer's hash gets it once the work went through (a refused or failed
    sync changes nothing)."""
    unmarked = claim_folder(machine_dir, machine, me, identity)
    take_lease(machine_dir, me, now)
    try:
        yield
        if unmarked and (mine := identity()) is not None:  # once the work went through, not before
            atomic_write_bytes(machine_dir / OWNER, _owner_doc(me, mine), commit=True)
    finally:
        release_lease(machine_dir, me)


def take_lease(machine_dir: Path, me: str, now: datetime) -> None:
    """Hold the writer lease for ``LEASE_SECONDS`` (renewed by calling again); raise SyncFailed (LOCKED,
    retried) while another install holds one that has not expired. A damaged lease is taken over."""
    path = machine_dir / LEASE
    damage = None
    try:
        held = _read(path)
    except BackupMoved:  # none
        held = None
    except BackupDamaged as exc:  # unreadable: a torn write, a folder, a hostile file
        held, damage = None, str(exc)
    if held is not None and held.install != me and held.until is not None and held.until > now:
        if held.until - now <= timedelta(seconds=LEASE_SECONDS) + CLOCK_SLACK:
            raise SyncFailed(
                f"another install (on computer {held.host!r}) is writing this backup folder until "
                f"{held.until.astimezone():%H:%M}; retrying",
                FailureKind.LOCKED,
                LEASE,
            )
        ahead = LEASE_SECONDS // 60
        damage = f"it runs until {held.until:%Y-%m-%d %H:%M} UTC, more than a lease ({ahead} min) ahead"
    if damage is not None:
        if path.is_dir() and not path.is_symlink():
            damage += f"; set aside in {set_aside(machine_dir, LEASE, stamp(now)).relative_to(machine_dir)}"
        logger.warning("taking over the writer lease of %s: %s", machine_dir, damage)
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
        try:  # kept in UTC: a far date with a negative offset overflows when compared or shown
            parsed = datetime.fromisoformat(u.text(until, path.name, 64))
            when = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
        except (ValueError, OverflowError):
            when = None
        if when is None:
            raise BackupDamaged(f"{path.name} is damaged: not a time: {u.short(until)}")
    computer = doc.get("computer", "")
    salt = doc.get("salt", "") if computer else ""
    if computer and not (isinstance(salt, str) and _SALT.match(salt)):
        raise BackupDamaged(f"{path.name} is damaged: not a salt: {u.short(salt)}")
    return Claim(
        u.text(doc.get("install"), path.name, 64),
        u.text(doc.get("host", "?"), path.name, 256),
        when,
        salt,
        u.digest(computer, f"{path.name} computer") if computer else "",
    )
