"""Which backed-up session a user means: an id, a unique start of one, or an exact title; in this
machine's folder first, then in the other machine folders of the backup (``--from`` names one).

What ``history``, ``show``, ``restore --at`` and the agent's show tool take. The sessions of a machine folder
are its files in ``sessions/`` and the last copies of deleted ones in ``versions/``; titles come from its
manifest and, for deleted sessions, from their last copies. Runs on the caller's thread.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup import scan
from app.backup.restore import NoSuchSession
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupError, UsageError, not_reachable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A session found: in which machine folder, and its id."""

    machine: str
    machine_dir: Path
    session_id: str


def find_session(
    backup_path: Path, machine: str, arg: str, from_machine: str | None = None, seal: Seal = PLAIN
) -> Target:
    """The session ``arg`` names (see the module's docstring). Raises NoSuchSession (a usage error) when
    none does, UsageError when it names several in one machine folder; BackupError when the backup folder
    is not there (a drive not mounted)."""
    if not arg:
        raise UsageError("say which session: its id, the start of its id, or its exact title")
    if not backup_path.is_dir():
        raise not_reachable(backup_path)
    names = (
        [from_machine]
        if from_machine
        else [machine, *(m for m in scan.machine_folders(backup_path) if m != machine)]
    )
    for name in names:
        try:
            machine_dir = br.safe_machine_dir(backup_path, name)
        except BackupError:
            if from_machine:
                raise
            continue  # this machine has no backup (yet): the others may
        sid = _Folder(machine_dir, name, seal).match(arg)
        if sid is not None:
            return Target(name, machine_dir, sid)
    where = f"machine folder {from_machine!r}" if from_machine else "any machine folder of the backup"
    raise NoSuchSession(
        f"no backed-up session in {where} has the id or title {arg!r} (see 'opencode-backup search')"
    )


def by_title(machine_dir: Path, args: tuple[str, ...], seal: Seal = PLAIN) -> tuple[str, ...]:
    """``args`` (what ``restore`` was given) with each exact title of a session of ``machine_dir`` replaced by
    its id; an id, the start of one, or anything else is passed on as it is (restore says what is wrong)."""
    folder = _Folder(machine_dir, machine_dir.name, seal)
    out = []
    for arg in args:
        try:
            out.append(folder.match(arg) or arg)
        except UsageError:  # the start of several ids: restore says so
            out.append(arg)
    return tuple(out)


class _Folder:
    """The sessions of one machine folder, their titles read only when a title is asked for."""

    def __init__(self, machine_dir: Path, machine: str, seal: Seal = PLAIN) -> None:
        self.machine_dir = machine_dir
        self.machine = machine
        self.seal = seal  # titles of an encrypted backup are opened with it
        self.current = {f.session_id for f in scan.copies_in(machine_dir, scan.SESSIONS, None)}
        self._titles: dict[str, str] | None = None

    @functools.cached_property
    def deleted(self) -> dict[str, scan.Found]:
        """The last copies of the sessions deleted from opencode (a stat of every file in versions/: only
        when an id is not one of the current files)."""
        return {sid: f for sid, f in scan.last_copies(self.machine_dir).items() if sid not in self.current}

    @functools.cached_property
    def ids(self) -> set[str]:
        return self.current | self.deleted.keys()

    def match(self, arg: str) -> str | None:
        """The id ``arg`` names here: itself, the only id it starts, or the only session titled so."""
        if arg in self.current or arg in self.ids:
            return arg
        starting = sorted(sid for sid in self.ids if sid.startswith(arg))
        if len(starting) == 1:
            return starting[0]
        if starting:
            raise UsageError(
                f"{arg!r} is the start of {len(starting)} sessions' ids in {self.machine!r}; give more of it"
            )
        titled = sorted(sid for sid, title in self.titles().items() if title == arg and sid in self.ids)
        if len(titled) > 1:
            ids = ", ".join(titled)
            raise UsageError(
                f"{len(titled)} sessions in {self.machine!r} are titled {arg!r}; give the id: {ids}"
            )
        return titled[0] if titled else None

    def titles(self) -> dict[str, str]:
        if self._titles is None:
            self._titles = {}
            try:
                self._titles = {
                    sid: self.seal.readable_text(e.title, f"the title of {sid}")
                    for sid, e in mf.load(self.machine_dir, self.machine).sessions.items()
                }
            except BackupError as exc:
                logger.warning("titles of %s are not looked at: %s", self.machine, exc)
            for sid, found in self.deleted.items():
                try:
                    doc = br.read_session(self.machine_dir / found.rel, sid, digest=False, seal=self.seal)
                    self._titles[sid] = doc.title
                except BackupError as exc:
                    logger.warning("the last copy of %s is left out: %s", sid, exc)
        return self._titles
