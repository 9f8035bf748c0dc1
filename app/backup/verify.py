"""``opencode-backup verify``: every file matches its manifest hash, every session file parses,
every snapshot passes ``PRAGMA integrity_check``. Reads the destination only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from app.backup import manifest as mf
from app.backup.backup_reader import SnapshotRef, checked_snapshot
from app.errors import BackupDamaged
from app.fsutil import sha256_file
from app.opencode.sessions import SESSION_FORMAT
from app.opencode.snapshot import parse_snapshot_name


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(machine_dir: Path, machine: str, work_dir: Path) -> VerifyReport:
    """Check the whole backup of one machine; problems are listed, one line each."""
    report = VerifyReport()
    try:
        man = mf.load(machine_dir, machine)
    except BackupDamaged as exc:
        report.problems.append(str(exc))
        return report
    if not (machine_dir / mf.MANIFEST).exists():
        report.problems.append(f"no backup here yet: {machine_dir / mf.MANIFEST} is missing")
        return report
    for sid, entry in sorted(man.sessions.items()):
        if _check_file(machine_dir, entry.path, entry.size, entry.sha256, report):
            _check_session(machine_dir / entry.path, sid, report)
    for rel, fentry in sorted(man.files.items()):
        if _check_file(machine_dir, rel, fentry.size, fentry.sha256, report) and rel.startswith("snapshots/"):
            _check_snapshot(machine_dir / rel, work_dir, report)
    for entries in mf.load_storage_index(machine_dir).values():
        for rel, fentry in sorted(entries.items()):
            _check_file(machine_dir, rel, fentry.size, fentry.sha256, report)
    return report


def _check_file(machine_dir: Path, rel: str, size: int, digest: str, report: VerifyReport) -> bool:
    report.checked += 1
    path = machine_dir / rel
    if path.is_symlink() or not path.is_file():
        report.problems.append(f"{rel}: missing")
        return False
    if path.stat().st_size != size or sha256_file(path) != digest:
        report.problems.append(f"{rel}: content does not match the manifest (damaged or changed)")
        return False
    return True


def _check_session(path: Path, sid: str, report: VerifyReport) -> None:
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as exc:
        report.problems.append(f"{path.name}: not valid JSON ({exc})")
        return
    if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT or doc.get("session_id") != sid:
        report.problems.append(f"{path.name}: not a session file for {sid}")


def _check_snapshot(path: Path, work_dir: Path, report: VerifyReport) -> None:
    """Decompress (size-capped) into a temp file and run integrity_check, as restore does."""
    parsed = parse_snapshot_name(path.name)
    ref = SnapshotRef(path, *(parsed or ("?", "?")))
    try:
        with checked_snapshot(ref, work_dir):
            pass
    except BackupDamaged as exc:
        report.problems.append(str(exc).removeprefix("refusing snapshot "))
