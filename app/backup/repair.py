"""``opencode-backup repair``: rebuild this machine folder's index from the files present (restic's
``repair index`` is the model).

A damaged ``manifest.json`` or shard stops every sync with the same line; nothing a sync does can mend
it. A repair takes stock of the files (each checked as untrusted input, see :mod:`.repair_scan`),
says what it would do (:func:`plan`, which writes nothing), and on the user's word (:func:`apply`):

1. holds the folder as a sync does (the local sync lock, owner.json, the writer lease), and checks no
   file it checked changed since the plan;
2. keeps the index it replaces in ``damaged/<stamp>/`` (hard links: ``manifest.json``, ``manifest.d/``);
3. commits a new index naming exactly the files that passed (new shards, then ``manifest.json`` renamed
   into place: the commit point, as a sync's), then clears an interrupted sync's intent;
4. only then sets aside, into ``damaged/<stamp>/``, the files that failed (no index names them now).

A crash before step 3's rename leaves the old index over untouched files; after it, the new index over
the files it names (what was not yet set aside is named by no index, and the next repair sets it aside).
Nothing is deleted. A session whose file is gone leaves the index: the next sync backs it up again if
opencode still has it. Runs on the caller's thread.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app import __version__
from app.backup import intent, ownership
from app.backup import manifest as mf
from app.backup.aside import DAMAGED, set_aside
from app.backup.guard import stamp
from app.backup.ownership import Identity
from app.backup.progress import Sink, nowhere
from app.backup.repair_scan import Inventory, take_stock
from app.backup.state import PERSON_WAIT, sync_lock
from app.crypt.seal import PLAIN, Seal
from app.errors import BackupDamaged, BackupError
from app.fsutil import keep_copy, make_private_dirs

Index = dict[str, tuple[int, str]]  # relative path -> (size, sha256): what an index says of each file


@dataclass(frozen=True)
class RepairPlan:
    """What a repair of ``machine_dir`` would do. ``was``: the index in force, in words (None: it reads
    and lists exactly the files present); ``changes``: how the rebuilt index differs from it."""

    machine_dir: Path
    stamp: str
    stock: Inventory
    was: str | None
    changes: tuple[str, ...]
    opencode_schema: str | None
    encryption: mf.Encryption = mf.PLAIN  # the new index's record (see Inventory.encryption)

    @property
    def needed(self) -> bool:
        return self.was is not None or bool(self.changes) or bool(self.stock.aside)

    @property
    def aside_dir(self) -> str:
        """Where this repair sets files aside and keeps the index it replaces (in the machine folder)."""
        return f"{DAMAGED}/{self.stamp}"

    def counts(self) -> str:
        s = self.stock
        return (
            f"{len(s.sessions)} session(s), {len(s.snapshots)} snapshot(s), {s.storage_files} legacy file(s)"
        )

    def text(self) -> str:
        """The plan in words (nothing has been changed yet)."""
        if not self.needed:
            return f"nothing to repair: the index of {self.machine_dir} lists exactly the files present"
        lines = [f"repair plan for {self.machine_dir} (nothing has been changed):"]
        if self.was is not None:
            lines.append(f"  the index in force: {self.was}")
        lines.append(f"  a new index of the files present that pass a restore's checks: {self.counts()}")
        lines += [f"  {change}" for change in self.changes]
        if self.stock.aside:
            lines.append(f"  set aside into {self.aside_dir}/ (moved, never deleted):")
            lines += [f"    {a.rel}: {a.why}" for a in sorted(self.stock.aside, key=lambda a: a.rel)]
        lines.append(f"  the index it replaces is kept in {self.aside_dir}/")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        s = self.stock
        return {
            "machine_dir": str(self.machine_dir),
            "needed": self.needed,
            "index_in_force": self.was,
            "changes": list(self.changes),
            "sessions": len(s.sessions),
            "snapshots": len(s.snapshots),
            "storage_files": s.storage_files,
            "set_aside": [{"path": a.rel, "why": a.why} for a in sorted(s.aside, key=lambda a: a.rel)],
            "set_aside_into": self.aside_dir,
        }


def plan(
    machine_dir: Path,
    machine: str,
    work_dir: Path,
    now: datetime,
    progress: Sink = nowhere,
    *,
    seal: Seal = PLAIN,
) -> RepairPlan:
    """Take stock of ``machine_dir`` and compare it with the index in force. Writes only into
    ``work_dir`` (a snapshot is decompressed there to be checked). ``seal``: this install's keys and
    what it encrypts to (an encrypted folder is repaired only where they open its files)."""
    stock = take_stock(machine_dir, work_dir, progress, seal)
    new = _index(stock)
    schema = None
    try:
        man = mf.load(machine_dir, machine)
        old = _index_of(machine_dir, man)
        schema = man.opencode_schema
    except BackupDamaged as exc:
        return RepairPlan(
            machine_dir, stamp(now), stock, f"damaged ({exc})", (), schema, stock.encryption(seal)
        )
    if not (machine_dir / mf.MANIFEST).exists():
        was = "missing (no manifest.json)" if new or stock.aside else None
        return RepairPlan(machine_dir, stamp(now), stock, was, (), schema, stock.encryption(seal))
    return RepairPlan(
        machine_dir, stamp(now), stock, None, _changes(old, new), schema, stock.encryption(seal)
    )


def _index(stock: Inventory) -> Index:
    out = {e.path: (e.size, e.sha256) for e in stock.sessions.values()}
    out.update({rel: (e.size, e.sha256) for rel, e in stock.snapshots.items()})
    for entries in stock.storage.values():
        out.update({rel: (e.size, e.sha256) for rel, e in entries.items()})
    return out


def _index_of(machine_dir: Path, man: mf.Manifest) -> Index:
    out = {e.path: (e.size, e.sha256) for e in man.sessions.values()}
    out.update({rel: (e.size, e.sha256) for rel, e in man.files.items()})
    for entries in mf.load_storage_index(machine_dir, man).values():
        out.update({rel: (e.size, e.sha256) for rel, e in entries.items()})
    return out


_KINDS = (("sessions/", "session file"), ("snapshots/", "snapshot"), ("storage/", "legacy file"))


def _changes(old: Index, new: Index) -> tuple[str, ...]:
    """How the new index differs from the old one, a line per kind of change and file."""
    lines = []
    for prefix, kind in _KINDS:
        added = sum(1 for rel in new.keys() - old.keys() if rel.startswith(prefix))
        gone = sum(1 for rel in old.keys() - new.keys() if rel.startswith(prefix))
        changed = sum(1 for rel in new.keys() & old.keys() if rel.startswith(prefix) and new[rel] != old[rel])
        if added:
            lines.append(f"{added} {kind}(s) present but not in the index: indexed")
        if changed:
            lines.append(f"{changed} {kind}(s) not as the index says: indexed as they are")
        if gone:
            lines.append(
                f"{gone} {kind}(s) in the index but missing or set aside: left out (the next backup "
                "copies again what opencode still has)"
            )
    return tuple(lines)


def apply(
    p: RepairPlan, machine: str, state_dir: Path, now: datetime, identity: Identity = ownership.no_identity
) -> None:
    """Carry out ``p`` (see the module's docstring). Raises BackupError (one line) when the folder is
    another install's, a sync holds it, or a file changed since the plan; nothing is changed then."""
    machine_dir = p.machine_dir
    with (
        sync_lock(state_dir, wait=PERSON_WAIT),  # a running sync ends first
        ownership.writing(machine_dir, machine, ownership.install_id(state_dir), identity, now),
    ):
        _unchanged(p)
        stock = p.stock
        _keep_index(machine_dir, p.stamp, [a.rel for a in stock.aside if _of_index(a.rel)])
        man = mf.Manifest(
            machine=machine,
            app_version=__version__,
            opencode_schema=p.opencode_schema,
            updated=now.isoformat(timespec="seconds"),
            sessions=dict(stock.sessions),
            files=dict(stock.snapshots),
            storage_files=stock.storage_files,
            storage_bytes=stock.storage_bytes,
            encryption=p.encryption,
        )
        mf.save(machine_dir, man, stock.storage, checked=stock.storage.keys())  # the commit
        intent.clear(machine_dir)
        for rel in sorted(a.rel for a in stock.aside if not _of_index(a.rel)):
            with contextlib.suppress(FileNotFoundError):  # gone meanwhile: nothing left to keep
                set_aside(machine_dir, rel, p.stamp)


def _unchanged(p: RepairPlan) -> None:
    for rel, seen in p.stock.seen.items():
        try:
            st = os.lstat(p.machine_dir / rel)
        except OSError:
            st = None
        if st is None or (st.st_size, st.st_mtime_ns, st.st_ino) != seen:
            raise BackupError(
                f"{rel} changed since the repair was planned (a sync, or the cloud client, wrote it); run "
                "repair again; nothing was changed"
            )


def _of_index(rel: str) -> bool:
    return rel in (mf.MANIFEST, mf.SHARD_DIR) or rel.startswith(mf.SHARD_DIR + "/")


def _keep_index(machine_dir: Path, at: str, odd: list[str]) -> None:
    """Before the commit: keep the index in force (``manifest.json`` and the files of ``manifest.d/``) in
    damaged/<at>/ by hard links, the files themselves staying until the commit replaces them; and set
    aside what the commit could not replace, or might replace and then lose: a folder or a link where
    ``manifest.json`` belongs, anything but a folder where ``manifest.d/`` does, and ``odd``, the links
    and special files in it (none of them is an index a load would read)."""
    for name, folder in ((mf.MANIFEST, False), (mf.SHARD_DIR, True)):
        path = machine_dir / name
        if os.path.lexists(path) and (path.is_symlink() or path.is_dir() != folder):
            set_aside(machine_dir, name, at)
    for rel in odd:
        with contextlib.suppress(FileNotFoundError):
            set_aside(machine_dir, rel, at)
    kept = [mf.MANIFEST] if (machine_dir / mf.MANIFEST).is_file() else []
    with (
        contextlib.suppress(FileNotFoundError, NotADirectoryError),
        os.scandir(machine_dir / mf.SHARD_DIR) as it,
    ):
        kept += [f"{mf.SHARD_DIR}/{e.name}" for e in it if e.is_file(follow_symlinks=False)]
    for rel in kept:
        target = machine_dir / DAMAGED / at / rel
        make_private_dirs(target.parent)
        keep_copy(machine_dir / rel, target)
