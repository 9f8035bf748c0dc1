"""``opencode-backup verify``: every file matches its manifest hash, every session file is a valid session
file, every snapshot passes ``PRAGMA integrity_check``. Reads the destination only.

In an encrypted folder the manifest's digests are those of the encrypted bytes, so every file is checked
without a key; with one, each session file and snapshot is also decrypted and checked as a restore would.

A sync interrupted between its first change and its commit leaves an intent (see :mod:`app.backup.intent`);
a file that holds the content the intent names, or a removal it names, is not damage: verify says a sync
was interrupted and that the next one completes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.backup import intent as it
from app.backup import manifest as mf
from app.backup import untrusted as u
from app.backup.backup_reader import (
    MAX_SESSION_BYTES,
    SnapshotRef,
    checked_snapshot,
    opened,
    read_bytes_capped,
    read_session,
)
from app.backup.progress import Sink, Step, Throttled, nowhere
from app.crypt.age import file_is_sealed
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupDamaged, KeyMissing
from app.fsutil import sha256_file
from app.opencode.snapshot import parse_snapshot_name


@dataclass
class VerifyReport:
    """``repair_helps``: ``opencode-backup repair`` would mend what was found (it rebuilds the index
    from the files present, setting aside what fails its checks)."""

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repair_helps: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    machine_dir: Path, machine: str, work_dir: Path, progress: Sink = nowhere, seal: Seal = PLAIN
) -> VerifyReport:
    """Check the whole backup of one machine; problems are listed, one line each. ``seal``: this
    install's keys (without one an encrypted file's content is not looked into)."""
    report = VerifyReport()
    tell = Throttled(progress)
    try:
        man = mf.load(machine_dir, machine)
        pending = it.load(machine_dir)
    except BackupDamaged as exc:
        report.problems.append(str(exc))
        report.repair_helps = True
        return report
    if not (machine_dir / mf.MANIFEST).exists():
        report.problems.append(f"no backup here yet: {machine_dir / mf.MANIFEST} is missing")
        report.repair_helps = any((machine_dir / d).exists() for d in ("sessions", "snapshots", "storage"))
        return report
    check = _Checker(machine_dir, report, pending, seal.for_folder(man.encryption.sealed))
    total = len(man.sessions) + len(man.files) + man.storage_files
    nbytes = 0  # of the files read so far
    for sid, entry in sorted(man.sessions.items()):
        tell.report(Step.VERIFYING, report.checked, total, nbytes)
        nbytes += entry.size
        if check.file(entry.path, entry.size, entry.sha256):
            check.session(entry.path, sid)
    for rel, fentry in sorted(man.files.items()):
        tell.report(Step.VERIFYING, report.checked, total, nbytes)
        nbytes += fentry.size
        if check.file(rel, fentry.size, fentry.sha256):
            check.snapshot(rel, work_dir, fentry.raw_size)
    for shard in mf.all_shards():  # one shard at a time: a big legacy index never sits in memory whole
        try:
            entries = mf.load_shard(machine_dir, man, shard)
        except BackupDamaged as exc:
            report.problems.append(str(exc))
            report.repair_helps = True
            return report
        for rel, fentry in sorted(entries.items()):
            tell.report(Step.VERIFYING, report.checked, max(total, report.checked), nbytes)
            nbytes += fentry.size
            if check.file(rel, fentry.size, fentry.sha256):
                check.legacy(rel)
    tell.report(Step.VERIFYING, report.checked, report.checked, nbytes)
    report.repair_helps = not report.ok  # a missing, changed or damaged file: re-indexed or set aside
    if check.locked:
        report.notes.append(
            f"{check.locked} encrypted file(s) checked against their digests only: this install has no key "
            "to look inside (opencode-backup encryption unlock)"
        )
    if pending is not None and check.interrupted:
        report.notes.append(
            f"a sync started at {pending.stamp} was interrupted: {check.interrupted} file(s) already hold "
            "what it was writing or removing; the next sync records them"
        )
    return report


class _Checker:
    def __init__(
        self, machine_dir: Path, report: VerifyReport, pending: it.Intent | None, seal: Seal
    ) -> None:
        self.machine_dir = machine_dir
        self.report = report
        self.pending = pending
        self.seal = seal
        self.interrupted = 0
        self.locked = 0  # encrypted files whose content could not be looked into (no key)

    def file(self, rel: str, size: int, digest: str) -> bool:
        """True when ``rel`` holds what the manifest records; an interrupted sync's state counts as fine
        (and is not checked further)."""
        self.report.checked += 1
        try:
            path = u.regular_file(self.machine_dir, rel)
        except BackupDamaged as exc:
            self.report.problems.append(str(exc))
            return False
        pending = self.pending
        if path is None:
            if pending is not None and rel in pending.removes:
                self.interrupted += 1
            else:
                self.report.problems.append(f"{rel}: missing")
            return False
        actual = (path.stat().st_size, sha256_file(path))
        if actual == (size, digest):
            return True
        if pending is not None and actual in pending.writes.get(rel, ()):
            self.interrupted += 1
            return False
        self.report.problems.append(f"{rel}: content does not match the manifest (damaged or changed)")
        return False

    def session(self, rel: str, sid: str) -> None:
        try:
            read_session(self.machine_dir / rel, sid, seal=self.seal)
        except KeyMissing:
            self.locked += 1
        except BackupDamaged as exc:
            self.report.problems.append(str(exc))

    def legacy(self, rel: str) -> None:
        """An encrypted legacy file opens (age checks every chunk); a plain one is taken as it is."""
        path = self.machine_dir / rel
        try:
            if not file_is_sealed(path) and not self.seal.strict:
                return
            opened(self.seal, read_bytes_capped(path, MAX_SESSION_BYTES), path)
        except KeyMissing:
            self.locked += 1
        except BackupDamaged as exc:
            self.report.problems.append(f"{rel}: {exc}")

    def snapshot(self, rel: str, work_dir: Path, raw_size: int) -> None:
        """Decompress (size-capped) into a temp file and run integrity_check, as restore does."""
        path = self.machine_dir / rel
        parsed = parse_snapshot_name(path.name)
        ref = SnapshotRef(path, *(parsed or ("?", "?")))
        try:
            with checked_snapshot(ref, work_dir, raw_size=raw_size or None, seal=self.seal):
                pass
        except KeyMissing:
            self.locked += 1
        except BackupDamaged as exc:
            self.report.problems.append(str(exc).removeprefix("refusing snapshot "))
