"""Every copy of one session that a machine folder holds, when each was backed up, and which one was the
session "as of" a time.

The copies: the current file (``sessions/<project>/<id>.json``), each kept version
(``versions/<stamp>/sessions/<project>/<id>.json``: ``<stamp>`` is the sync that *replaced* or removed it,
so that copy was the newest until then) and each snapshot that holds the session (taken at its stamp).

When a copy was backed up: a sync that replaces a file writes the next copy, so a copy was written by the
sync that replaced the copy before it, at that copy's stamp. Thinning (hourly for a day, daily after)
removes copies, so "the copy before it" may be gone, and the sync that wrote this one unknown. A copy
cannot have been written before the session's own last change it holds (``time_updated``): when that is
later than the previous kept copy's stamp, copies in between were thinned, and the time is given as a
range, never as a guess: *after* its last change (or that stamp), *by* the stamp that replaced it. A copy
whose last change is at or before that stamp is taken as written then (a copy thinned in between would
have to hold changes that did not move ``time_updated``: a reply rewritten in place within seconds).
A snapshot's copy was backed up at its stamp, exactly.

``as_of(TIME)`` is the copy backed up at or before TIME that was still the newest at TIME; for a copy
known only by its range, its lower end counts. Where the newest such copy had already been replaced at
TIME (the one that followed it was thinned), there is no honest answer: :class:`NoCopyThen` says which
copies are nearest. Runs on the caller's thread.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from app.backup import backup_reader as br
from app.backup import scan
from app.backup.guard import VERSIONS, parse_stamp
from app.backup.snapshot_check import snapshots
from app.backup.snapshot_sessions import safe_contents
from app.backup.transcript import local, moment
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupError, KeyMissing

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a copy that says nothing of its time: the oldest


class Kind(enum.Enum):
    """Where a copy is."""

    CURRENT = "current"  # sessions/<project>/<id>.json
    VERSION = "version"  # versions/<stamp>/...: replaced or removed by the sync at <stamp>
    SNAPSHOT = "snapshot"  # inside snapshots/<label>-<stamp>.db.zst


class NoCopyThen(BackupError):
    """No copy kept is the session as it was at that time (see the module's docstring)."""


@dataclass(frozen=True)
class Copy:
    """One copy of a session. ``backed_up``: when a sync wrote it, when known; else it was written
    ``after`` (its last change, or the stamp of the copy before it) and ``before`` ``until``. ``until``:
    when a later sync replaced it (None: the current file, or a snapshot). ``number``: 1 is the newest."""

    number: int
    kind: Kind
    rel: str
    backed_up: datetime | None
    after: datetime | None
    until: datetime | None
    time_updated: datetime | None
    messages: int
    size: int | None  # bytes of its file; None for a snapshot's copy
    also_in: tuple[str, ...] = ()  # snapshots holding this same copy (not listed apart)

    @property
    def since(self) -> datetime | None:
        """From when this copy stands for the session: when it was backed up, or the earliest it can
        have been."""
        return self.backed_up or self.after

    def when(self) -> str:
        """When it was backed up, in local time: a time, or the range it is known to lie in (the end
        without its date when it is the same day)."""
        if self.backed_up is not None:
            return local(self.backed_up)
        if self.until is None:
            return f"after {local(self.after)}" if self.after else "unknown"
        if self.after is None:
            return f"by {local(self.until)}"
        until = local(self.until)
        same_day = until[:10] == local(self.after)[:10]
        return f"after {local(self.after)}, by {until[11:] if same_day else until}"


@dataclass(frozen=True)
class History:
    """The copies of one session in one machine folder, newest first."""

    session_id: str
    title: str
    machine: str
    machine_dir: Path
    copies: tuple[Copy, ...]
    seal: Seal = field(default=PLAIN, repr=False, compare=False)  # the keys its copies were read with

    def number(self, n: int) -> Copy:
        """Copy ``n`` as ``history`` numbers them (1 = newest)."""
        if not 1 <= n <= len(self.copies):
            raise NoCopyThen(
                f"{self.session_id} has {len(self.copies)} version(s) in the backup; there is no {n}"
            )
        return self.copies[n - 1]

    def as_of(self, when: datetime) -> Copy:
        """The copy that was the session at ``when`` (see the module's docstring)."""
        known = [c for c in self.copies if c.since is not None and c.since <= when]
        if not known:
            oldest = min((c for c in self.copies if c.since), key=lambda c: c.since or when, default=None)
            since = f"; the oldest, version {oldest.number}, was backed up {oldest.when()}" if oldest else ""
            raise NoCopyThen(f"the backup holds no copy of {self.session_id} from {local(when)}{since}")
        best = max(known, key=lambda c: (c.since, c.kind is not Kind.SNAPSHOT))
        if best.until is not None and best.until <= when:
            later = [c for c in self.copies if c.since is not None and c.since > when]
            if not later and all(c.kind is not Kind.CURRENT for c in self.copies):
                # the newest copy was moved to versions/ by the sync that backed up the session's deletion
                raise NoCopyThen(
                    f"{self.session_id} was deleted by {local(when)}: its deletion was backed up at "
                    f"{local(best.until)}; its last copy is version {best.number} (--version {best.number})"
                )
            after = (
                f" and the next kept, version {later[-1].number}, was backed up {later[-1].when()}"
                if later
                else ""
            )
            raise NoCopyThen(
                f"no copy of {self.session_id} kept from {local(when)}: version {best.number} was replaced "
                f"at {local(best.until)}{after} (copies in between were thinned; see 'history')"
            )
        return best


def history(
    machine_dir: Path,
    session_id: str,
    work_dir: Path,
    *,
    with_snapshots: bool = True,
    newest_only: bool = False,
    seal: Seal = PLAIN,
) -> History:
    """Every copy of ``session_id`` in ``machine_dir`` (a damaged one is left out, with a warning); a
    snapshot's copy that is the same as a file's (same last change and messages) is named on that copy
    instead of listed apart. ``newest_only``: only the newest file copy is read (what ``show`` needs; a
    long chat's copies are megabytes each). Raises BackupError when none can be read."""
    h = _file_history(machine_dir, session_id, newest_only, seal)
    if with_snapshots and not newest_only:
        h = add_snapshots(h, work_dir)
    if not h.copies:
        raise BackupError(f"no readable copy of {session_id} in {machine_dir}")
    return h


def add_snapshots(h: History, work_dir: Path) -> History:
    """``h``, read without its snapshots, with the copies the snapshots hold added as ``history`` adds
    them (the same copies, numbers and order), without reading its file copies again."""
    if any(c.kind is Kind.SNAPSHOT or c.also_in for c in h.copies):
        return h  # looked into already
    copies = list(h.copies)
    for snap in _snapshot_copies(h.machine_dir, h.session_id, work_dir, h.seal):
        same = next((i for i, c in enumerate(copies) if _same(c, snap)), None)
        if same is None:
            copies.append(snap)
        else:
            copies[same] = replace(copies[same], also_in=(*copies[same].also_in, snap.rel))
    return _numbered(replace(h, copies=()), copies)


def _file_history(machine_dir: Path, session_id: str, newest_only: bool, seal: Seal) -> History:
    """The file copies of ``history`` (none when none can be read)."""
    files = _files(machine_dir, session_id)
    copies: list[Copy] = []
    title = ""
    for i in reversed(range(len(files))):
        until, rel, size = files[i]
        try:
            doc = br.read_session(machine_dir / rel, session_id, digest=False, seal=seal)
        except KeyMissing:
            raise  # an encrypted backup and no key: said once, plainly (not a copy "left out")
        except BackupError as exc:
            logger.warning("version %s of %s is left out: %s", rel, session_id, exc)
            continue
        previous = files[i - 1][0] if i > 0 else None  # the sync that replaced the copy before wrote this one
        copies.append(_file_copy(previous, until, rel, size, doc))
        title = title or doc.title
        if newest_only:
            break
    return _numbered(History(session_id, title, machine_dir.name, machine_dir, (), seal), copies)


def _numbered(h: History, copies: list[Copy]) -> History:
    """``h`` holding ``copies``, newest first (a snapshot after a file of the same time), numbered from 1."""
    copies.sort(key=lambda c: (c.since or EPOCH, c.kind is not Kind.SNAPSHOT), reverse=True)
    return replace(h, copies=tuple(replace(c, number=i + 1) for i, c in enumerate(copies)))


def _same(file: Copy, snap: Copy) -> bool:
    """A snapshot holds the same copy as a file that was the newest when the snapshot was taken."""
    if file.kind is Kind.SNAPSHOT:
        return False
    taken = snap.backed_up
    newest_then = taken is not None and (file.until is None or file.until > taken)
    return newest_then and (file.time_updated, file.messages) == (snap.time_updated, snap.messages)


def _files(machine_dir: Path, sid: str) -> list[tuple[datetime | None, str, int]]:
    """(replaced at, file, size) of each file copy, oldest first; the current file last (None)."""
    out: list[tuple[datetime | None, str, int]] = []
    for stamp_dir in sorted(scan.version_stamps(machine_dir)):
        when = parse_stamp(stamp_dir)
        for f in scan.copies_in(machine_dir, f"{VERSIONS}/{stamp_dir}/{scan.SESSIONS}", sid):
            out.append((when, f.rel, f.size))
    current = scan.copies_in(machine_dir, scan.SESSIONS, sid)
    if current:
        newest = max(current, key=lambda f: f.mtime_ns)
        out.append((None, newest.rel, newest.size))
    return out


def _file_copy(
    previous: datetime | None, until: datetime | None, rel: str, size: int, doc: br.SessionDoc
) -> Copy:
    """A file copy, its time worked out from the stamps around it (see the module's docstring). A last
    change after the stamp that replaced the copy (or after now) says the clock was off then: it is no
    bound, and not shown as one."""
    updated = moment(doc.time_updated)
    exact = previous is not None and (updated is None or updated <= previous)
    ceiling = until or datetime.now(UTC)
    known = [t for t in (previous, updated) if t is not None and t <= ceiling]
    after = None if exact else max(known, default=None)
    kind = Kind.CURRENT if until is None else Kind.VERSION
    return Copy(0, kind, rel, previous if exact else None, after, until, updated, _messages(doc), size)


def _snapshot_copies(machine_dir: Path, sid: str, work_dir: Path, seal: Seal) -> list[Copy]:
    out = []
    for ref in snapshots(machine_dir):
        held = safe_contents(ref, work_dir, seal).get(sid)
        taken = parse_stamp(ref.stamp)
        if held is not None and taken is not None:
            rel = f"snapshots/{ref.path.name}"
            out.append(
                Copy(0, Kind.SNAPSHOT, rel, taken, None, None, moment(held.time_updated), held.messages, None)
            )
    return out


def _messages(doc: br.SessionDoc) -> int:
    return len(doc.rows.get("session_message" if doc.store == "v2" else "message", ()))


def version_counts(machine_dir: Path, ids: Iterable[str] | None = None) -> dict[str, int]:
    """Session id -> how many file copies the machine folder holds (the current file and each kept version;
    snapshots not counted: looking into them takes seconds). What the restore picker shows."""
    counts: dict[str, int] = {}
    wanted = None if ids is None else set(ids)
    for rel_dir in [
        scan.SESSIONS,
        *(f"{VERSIONS}/{s}/{scan.SESSIONS}" for s in scan.version_stamps(machine_dir)),
    ]:
        for f in scan.copies_in(machine_dir, rel_dir, None):
            if wanted is None or f.session_id in wanted:
                counts[f.session_id] = counts.get(f.session_id, 0) + 1
    return counts
