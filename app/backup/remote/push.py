"""An upload: the mirror's committed state put on the remote in an order that keeps the remote a valid backup
at every moment. Runs on the worker thread, under the sync lock.

rclone can replace a file on no backend in one step: a server-side move onto an existing name deletes the
old file first (operations.Move), and an sftp upload before rclone 1.63 writes into the file itself and
removes it when the upload fails. So nothing the remote's manifest names is ever written over where it
is read:

1. **put**: one ``rclone copy`` of the outbox (hard links to the mirror's files): every file the remote
   lacks under its own name (new sessions, snapshots, legacy files, index shards, the versions/ copies of
   what this upload replaces or removes: nothing the remote's manifest names yet); when files are
   replaced, the remote intent (``manifest.d/intent.json``: each such path may hold its new content, or be
   missing for a moment); and the replaced files and the new ``manifest.json`` under
   ``.incoming/<machine>/`` beside the machine folders (a folder of its own: rclone refuses a move between
   overlapping folders).
2. **replace**: one ``rclone move`` of the replaced files from ``.incoming/<machine>/`` into place.
3. **commit**: ``rclone moveto`` of ``manifest.json`` into place.
4. **clean**: one ``rclone delete`` of what the new manifest no longer names (removed sessions, pruned
   snapshots, thinned versions, old index shards but those the replaced manifest named: a reader that
   loaded it a moment ago can still read them) and the intent.

The ledger records each step's work as rclone reports it (its "Copied", "Moved", "Deleted" lines), also
of a step that failed half-way, so a cut upload is finished by the next one from where it stopped; every
step can run again. ``verify`` of the remote passes between any two steps and after a kill in any of them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from app.backup import intent as it
from app.backup import manifest as mf
from app.backup.progress import Report, Step, unreported
from app.backup.remote.diff import INTENT, Upload
from app.backup.remote.ledger import Ledger
from app.errors import FailureKind, TransferError
from app.fsutil import Content, keep_copy, make_private_dirs
from app.transfer.rclone import Rclone, RcloneFailed, RemoteSpec

logger = logging.getLogger(__name__)

STAGING = ".incoming"


def staging(spec: RemoteSpec, machine: str) -> str:
    """Where an upload stages what replaces a file of ``machine``'s folder: hidden beside the machines."""
    return spec.at(STAGING, machine)


class Pusher:
    """The steps of one upload of ``machine_dir`` (the mirror's machine folder) to ``spec``'s machine
    folder, each recorded in ``ledger``."""

    def __init__(
        self, client: Rclone, spec: RemoteSpec, machine_dir: Path, outbox: Path, ledger: Ledger
    ) -> None:
        self.client = client
        self.spec = spec
        self.machine = machine_dir.name
        self.machine_dir = machine_dir
        self.outbox = outbox
        self.ledger = ledger

    def push(self, up: Upload, now: datetime, cancel: threading.Event, report: Report = unreported) -> None:
        """Put ``up`` on the remote (see the module's steps); raises RcloneFailed (after recording what
        got there) when a step fails."""
        total = len(up.new) + len(up.replaced) + bool(up.manifest)
        report(Step.UPLOADING, 0, total)
        self._put(up, cancel)
        if up.replaced:
            self._replace(up.replaced, cancel)
        if up.manifest is not None:
            self._commit(up, now, cancel)
        self._clean(up, cancel)
        report(Step.UPLOADING, total, total, up.nbytes)

    def _intent(self, up: Upload) -> it.Intent | None:
        """The remote intent this upload needs: one candidate more for each replaced path (and that it
        may be missing while rclone moves it in), over what a cut upload's intent named."""
        before = self.ledger.meta_json("intent", None)
        writes: dict[str, tuple[Content, ...]] = {}
        removes: set[str] = set()
        if isinstance(before, dict):
            for rel, contents in before.get("writes", {}).items():
                writes[rel] = tuple((int(c[0]), str(c[1])) for c in contents)
            removes.update(before.get("removes", []))
        for rel, content in up.replaced.items():
            if rel.split("/", 1)[0] not in ("sessions", "snapshots", "storage"):
                continue  # owner.json: no file the manifest names
            writes[rel] = (*(c for c in writes.get(rel, ()) if c != content), content)[-it.MAX_CANDIDATES :]
            removes.add(rel)
        return it.Intent("remote", writes, tuple(sorted(removes))) if writes or removes else None

    # --- the steps -------------------------------------------------------------------------------

    def _put(self, up: Upload, cancel: threading.Event) -> None:
        """Step 1: new files under their names, the intent, the replaced files and manifest staged."""
        shutil.rmtree(self.outbox, ignore_errors=True)
        mine, incoming = self.outbox / self.machine, self.outbox / STAGING / self.machine
        names = []
        for rel in up.new:
            _link(self.machine_dir / rel, mine / rel)
            names.append(f"{self.machine}/{rel}")
        now = sorted({*up.replaced, *([mf.MANIFEST] if up.manifest else [])})
        for rel in now:
            _link(self.machine_dir / rel, incoming / rel)
            names.append(f"{STAGING}/{self.machine}/{rel}")
        meta: dict[str, str | None] = {
            "staged": json.dumps(sorted({*self.ledger.meta_json("staged", []), *now}))
        }
        intent = self._intent(up) if up.replaced else None
        if intent is not None:
            make_private_dirs(mine / mf.SHARD_DIR)
            it.write(mine, intent)
            names.append(f"{self.machine}/{INTENT}")
            meta["intent"] = json.dumps({"writes": intent.writes, "removes": intent.removes})
        self.ledger.record(meta=meta)  # first: what a kill in the copy may leave is known
        try:
            said = self.client.upload(self.outbox, self.spec.at(), names, cancel)
        except RcloneFailed as exc:
            self._arrived(up.new, exc.said.copied)
            raise
        self._arrived(up.new, said.copied)
        _all_done("copied", names, said.copied)

    def _replace(self, replaced: dict[str, Content], cancel: threading.Event) -> None:
        """Step 2: the replaced files moved in from the staging folder (the intent covers each)."""
        rels = sorted(replaced)
        src, dst = staging(self.spec, self.machine), self.spec.at(self.machine)
        try:
            said = self.client.move(src, dst, rels, cancel)
        except RcloneFailed as exc:
            self._moved({rel: c for rel, c in replaced.items() if rel in exc.said.moved})
            raise
        self._moved({rel: c for rel, c in replaced.items() if rel in said.moved})
        _all_done("moved in", rels, said.moved)

    def _commit(self, up: Upload, now: datetime, cancel: threading.Event) -> None:
        """Step 3: ``manifest.json`` moved in: the remote holds the mirror's committed backup."""
        assert up.manifest is not None
        src = staging(self.spec, self.machine) + f"/{mf.MANIFEST}"
        said = self.client.moveto(src, self.spec.at(self.machine, mf.MANIFEST), cancel)
        _all_done("moved in", [mf.MANIFEST], said.moved)
        staged = [rel for rel in self.ledger.meta_json("staged", []) if rel != mf.MANIFEST]
        meta = {
            "committed": up.committed.to_json(),
            "uploaded_at": now.isoformat(),
            "staged": json.dumps(staged),
        }
        self.ledger.record({mf.MANIFEST: up.manifest}, (), meta)

    def _clean(self, up: Upload, cancel: threading.Event) -> None:
        """Step 4: what the committed manifest no longer names, the intent, and what a cut upload staged
        for files that are not replaced any more."""
        gone = [*up.gone, *([INTENT] if self.ledger.meta("intent") is not None else [])]
        if gone:
            # First: a kill after rclone's delete leaves rows that may name no file: with their content
            # unknown, a file that comes back is staged and moved in (or deleted again), never skipped.
            self.ledger.record(_unknown(self.ledger, gone))
            try:
                self.client.delete(self.spec.at(self.machine), gone, cancel)
            except RcloneFailed as exc:
                self.ledger.record(gone=[rel for rel in gone if rel in exc.said.deleted])
                raise
            self.ledger.record(gone=gone)
        leftovers = self.ledger.meta_json("staged", [])
        if leftovers:
            self.client.delete(staging(self.spec, self.machine), leftovers, cancel)
        meta = {"intent": None, "staged": None, "stamps": json.dumps(list(up.stamps))}
        self.ledger.record(meta=meta)
        shutil.rmtree(self.outbox, ignore_errors=True)

    # --- the ledger --------------------------------------------------------------------------------

    def _arrived(self, wanted: dict[str, Content], copied: frozenset[str]) -> None:
        arrived = {rel: c for rel, c in wanted.items() if f"{self.machine}/{rel}" in copied}
        if arrived:
            self.ledger.record(arrived)

    def _moved(self, moved: dict[str, Content]) -> None:
        staged = [rel for rel in self.ledger.meta_json("staged", []) if rel not in moved]
        self.ledger.record(moved, (), {"staged": json.dumps(staged)})


def _unknown(ledger: Ledger, rels: Sequence[str]) -> dict[str, Content]:
    """The ledger's rows of ``rels`` with their content made unknown (a file there, or not)."""
    rows = {rel: ledger.get(rel) for rel in rels}
    return {rel: (row[0], "unknown") for rel, row in rows.items() if row is not None}


def _all_done(what: str, wanted: Sequence[str], done: frozenset[str]) -> None:
    """rclone skips a listed file it cannot find without a word (an exit code of 0): a step counts only
    when its log names every file."""
    missing = [name for name in wanted if name not in done]
    if missing:
        raise TransferError(
            f"rclone {what} {len(wanted) - len(missing)} of {len(wanted)} files; not {missing[0]} (the "
            "remote did not show it yet?); the next sync goes on from here",
            FailureKind.OFFLINE,
        )


def _link(src: Path, dst: Path) -> None:
    """``dst`` holds ``src``'s bytes: a hard link (the mirror's files are replaced by rename, never
    rewritten, so the link keeps what was committed), or a copy."""
    make_private_dirs(dst.parent)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    keep_copy(src, dst)
