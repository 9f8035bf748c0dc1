"""A backup on an rclone remote: a local mirror of this machine's folder, kept in step with the remote.

The sync writes into the mirror (``<cache>/remotes/<remote>-<hash>/mirror/<machine>/``) exactly as into a
folder, commit point included; after each local commit :meth:`RemoteSite.push` uploads what the remote
lacks (:mod:`.diff`, :mod:`.push`). Before a sync, :meth:`RemoteSite.prepare` makes sure the mirror is
this remote's: a mirror that is missing (a new computer, a purged cache) is filled from the remote first,
after ``owner.json`` said the folder is this install's; a ledger that is missing is rebuilt by comparing
the remote with the mirror; and every few minutes the remote's ``owner.json``, ``writer.lease`` and
``manifest.json`` are read back, so one writer per machine folder holds across computers sharing the
remote: another install's folder is refused as a local one is, and the writer lease lives on the remote.
Owned by the thread that syncs (the worker's, or a command's), under the sync lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from app.backup import manifest as mf
from app.backup.guard import VERSIONS
from app.backup.ownership import LEASE, OWNER, Identity, claim_folder, read_claim, take_lease
from app.backup.progress import Report, Step, unreported
from app.backup.remote.diff import Committed, committed_of, compare
from app.backup.remote.ledger import Ledger, ledger_file
from app.backup.remote.listing import RemoteFile, parse_listing
from app.backup.remote.push import Pusher
from app.errors import BackupError
from app.fsutil import Content, atomic_write_bytes, make_private_dirs, sha256_file
from app.transfer.rclone import Rclone, RemoteSpec
from app.transfer.rclone_log import parse_line, stats_of
from app.transfer.rclone_rc import Daemon

logger = logging.getLogger(__name__)

# The remote's owner.json, writer.lease and manifest.json are read back at most this often by a warm
# service (two rclone calls, ~0.2 s); the lease is renewed with them, so it never runs out while we sync.
CHECK_EVERY_S = 300.0


@dataclass
class RemoteSite:
    """This machine's folder on ``spec``: its cache folder (mirror, ledger, outbox, downloads), the rclone
    that reaches it, and ``held``: why uploads must wait now (a metered network, a battery; None: they
    need not). One per SyncContext; its state (the open ledger, the last check) lives with it."""

    spec: RemoteSpec
    client: Rclone
    cache: Path
    held: Callable[[], str | None] = lambda: None
    clock: Callable[[], float] = time.monotonic
    resident: bool = False  # keep one rclone running for the few files of each upload (the live service)
    _ledgers: dict[str, Ledger] = field(default_factory=dict, repr=False)
    _checked: dict[str, float] = field(default_factory=dict, repr=False)
    _leased: dict[str, str] = field(default_factory=dict, repr=False)  # machine -> the install holding it

    def __post_init__(self) -> None:
        if self.resident and self.client.daemon is None:
            make_private_dirs(self.cache)
            pidfile = self.cache / "rcd.pid"
            self.client.daemon = Daemon(self.client.binary, self.client.options.flags(), pidfile)

    @property
    def mirror(self) -> Path:
        """The local folder the sync writes: the backup path of the mirror."""
        return self.cache / "mirror"

    def ledger(self, machine: str) -> Ledger:
        if machine not in self._ledgers:
            self._ledgers[machine] = Ledger(ledger_file(self.cache, machine))
        ledger = self._ledgers[machine]
        ledger.refresh()
        return ledger

    def close(self) -> None:
        for ledger in self._ledgers.values():
            ledger.close()
        self._ledgers.clear()

    def release(self) -> None:
        """Give back the remote writer leases this site took (a service that stops, a sync of the command
        line that ended) when they are still ours, then close the ledgers. Best effort: a lease left
        behind runs out by itself."""
        for machine, me in list(self._leased.items()):
            box = self.cache / "check" / machine
            try:
                shutil.rmtree(box, ignore_errors=True)
                make_private_dirs(box)
                self.client.download(self.spec.at(machine), box, threading.Event(), rels=[LEASE])
                held = read_claim(box, LEASE)
                if held is not None and held.install == me:
                    self.client.delete(self.spec.at(machine), [LEASE], threading.Event())
            except (BackupError, OSError) as exc:
                logger.info("the writer lease on %s stays until it runs out: %s", self.spec.at(machine), exc)
        self._leased.clear()
        self._checked.clear()
        if self.client.daemon is not None:
            self.client.daemon.close()
        self.close()

    def ready(self, machine: str, cancel: threading.Event) -> None:
        """Fill the mirror from the remote when it has none, whoever owns the folder (``adopt`` and
        ``repair`` read it before they decide), and compare the remote with it at the next sync."""
        ledger = self.ledger(machine)
        if not (self.mirror / machine / mf.MANIFEST).is_file():
            self._seed(machine, ledger, "", None, cancel=cancel, report=unreported)
            ledger.record(meta={"target": f"{self.spec.text}/{machine}"})

    def compare_next(self, machine: str) -> None:
        """Compare the remote with the mirror file by file at the next sync (after a repair)."""
        self.ledger(machine).record(meta={"target": None})
        self.forget_check(machine)

    def has_mirror(self, machine: str) -> bool:
        """Whether the mirror of ``machine`` can take a sync without the remote (it was filled from it, or
        written by this install, and its ledger is this remote's): a sync then backs up locally while
        the remote cannot be reached."""
        if not (self.mirror / machine / mf.MANIFEST).is_file():
            return False
        return self.ledger(machine).meta("target") == f"{self.spec.text}/{machine}"

    def forget_check(self, machine: str) -> None:
        """Read the remote back at the next sync (after a failed upload, say)."""
        self._checked.pop(machine, None)

    # --- before a sync ------------------------------------------------------------------------------

    def prepare(
        self,
        machine: str,
        me: str,
        identity: Identity,
        now: datetime,
        *,
        cancel: threading.Event,
        report: Report = unreported,
    ) -> None:
        """Make the mirror of ``machine`` this remote's before a sync writes it (see the module); raises
        SyncFailed (another install's folder, a lease held elsewhere) or TransferError (rclone)."""
        ledger = self.ledger(machine)
        machine_dir = self.mirror / machine
        target = f"{self.spec.text}/{machine}"
        compared = True  # the ledger was just rebuilt from the remote's listing
        if not (machine_dir / mf.MANIFEST).is_file():
            self._seed(machine, ledger, me, identity, cancel=cancel, report=report)
            ledger.record(meta={"target": target})
        elif ledger.meta("target") != target:
            logger.info(
                "comparing %s with the mirror %s (this computer's record of it is gone)", target, machine_dir
            )
            self._reconcile(machine, ledger, cancel)
            ledger.record(meta={"target": target})
        else:
            compared = False
        last = self._checked.get(machine)
        if last is None or self.clock() - last >= CHECK_EVERY_S:
            self._check(machine, ledger, me, now, cancel, compared=compared)
            self._checked[machine] = self.clock()

    def _seed(
        self,
        machine: str,
        ledger: Ledger,
        me: str,
        identity: Identity | None,
        *,
        cancel: threading.Event,
        report: Report,
    ) -> None:
        """Fill an empty mirror from the remote: owner.json first (another install's folder is refused
        before its backup is downloaded; ``identity`` None: no claim, for adopt and repair), then the
        rest."""
        machine_dir = self.mirror / machine
        files = parse_listing(self.client.listing(self.spec.at(machine), cancel))
        shutil.rmtree(machine_dir, ignore_errors=True)  # it holds nothing committed: no manifest
        make_private_dirs(machine_dir)
        if not files:
            ledger.reset({}, {})
            return
        if OWNER in files:
            self.client.download(self.spec.at(machine), machine_dir, cancel, rels=[OWNER])
        if identity is not None:
            claim_folder(machine_dir, machine, me, identity)
        logger.info("downloading %s into %s (%d files)", self.spec.at(machine), machine_dir, len(files))
        report(Step.DOWNLOADING, 0, len(files))
        self.client.download(self.spec.at(machine), machine_dir, cancel, filters=_SEED_FILTERS)
        report(Step.DOWNLOADING, len(files), len(files))
        self._know(machine, ledger, files, trust_sizes=True)

    def _reconcile(self, machine: str, ledger: Ledger, cancel: threading.Event) -> None:
        """Rebuild the ledger: a remote file counts as the mirror's when both hold it with the same size
        and, where the remote has a hash the mirror's copy can be checked against, the same hash; any
        other is known as there with unknown content (replaced under the intent, or deleted after the
        commit, never written over in place)."""
        files = parse_listing(self.client.listing(self.spec.at(machine), cancel, hashes=True))
        self._know(machine, ledger, files, trust_sizes=False)

    def _know(self, machine: str, ledger: Ledger, files: dict[str, RemoteFile], *, trust_sizes: bool) -> None:
        machine_dir = self.mirror / machine
        known: dict[str, Content] = {}
        for rel, remote in files.items():
            path = machine_dir / rel
            if rel.split("/", 1)[0] == "damaged":
                continue
            if not path.is_file() or path.stat().st_size != remote.size:
                known[rel] = (remote.size, "unknown")  # there, with other content: never put up in its place
                continue
            same = remote.same_as(path)
            if same is False or (same is None and not trust_sizes):
                known[rel] = (remote.size, "unknown")  # replaced (staged, moved in) if the manifest names it
            else:
                known[rel] = (remote.size, sha256_file(path))
        committed = Committed()
        remote_head = known.get(mf.MANIFEST)
        if remote_head is not None and remote_head[1] != "unknown":
            with contextlib.suppress(BackupError):  # a manifest that does not load: compared as none
                committed = Committed.of(remote_head[1], mf.load(machine_dir, machine))
        stamps = (
            sorted({rel.split("/")[1] for rel in known if rel.startswith(f"{VERSIONS}/")})
            if trust_sizes
            else []
        )
        ledger.reset(known, {"committed": committed.to_json(), "stamps": json.dumps(stamps)})

    def _check(
        self, machine: str, ledger: Ledger, me: str, now: datetime, cancel: threading.Event, *, compared: bool
    ) -> None:
        """Read back the remote's owner.json, writer.lease and manifest.json; take the remote lease.
        ``compared``: the ledger was just rebuilt from the remote, so a manifest there other than the
        mirror's is the one it was compared with (the mirror is ahead), not news."""
        box = self.cache / "check" / machine
        shutil.rmtree(box, ignore_errors=True)
        make_private_dirs(box)
        self.client.download(self.spec.at(machine), box, cancel, rels=[OWNER, LEASE, mf.MANIFEST])
        machine_dir = self.mirror / machine
        if (box / OWNER).is_file():
            theirs = (box / OWNER).read_bytes()
            owner: Content = (len(theirs), hashlib.sha256(theirs).hexdigest())
            if ledger.get(OWNER) != owner:  # not the one this computer put there: the remote's word counts
                atomic_write_bytes(machine_dir / OWNER, theirs)  # (the local claim decides on it)
                ledger.record({OWNER: owner})
        elif ledger.get(OWNER) is not None:
            ledger.record(gone=[OWNER])  # gone from the remote: put it back
        head = box / mf.MANIFEST
        there = sha256_file(head) if head.is_file() else ""
        committed = committed_of(ledger)
        if there != committed.sha256:
            mine = sha256_file(machine_dir / mf.MANIFEST)
            if there == mine:  # our own commit went through and its record did not
                committed = Committed.of(there, mf.load(machine_dir, machine))
                content = (head.stat().st_size, there)
                ledger.record({mf.MANIFEST: content}, meta={"committed": committed.to_json()})
            elif not compared:
                logger.warning(
                    "%s holds another manifest.json than this computer uploaded last; comparing it file by "
                    "file",
                    self.spec.at(machine),
                )
                self._reconcile(machine, ledger, cancel)
        take_lease(box, me, now)  # raises while another install holds the remote's lease
        self.client.upload(box, self.spec.at(machine), [LEASE], cancel)
        self._leased[machine] = me

    # --- after a sync -------------------------------------------------------------------------------

    def push(
        self,
        machine: str,
        man: mf.Manifest,
        now: datetime,
        cancel: threading.Event,
        report: Report = unreported,
    ) -> int:
        """Upload what the remote lacks of the mirror's committed state (``man``: its manifest); the bytes
        sent. Raises TransferError (after recording what got there) when rclone fails."""
        ledger = self.ledger(machine)
        up = compare(self.mirror / machine, man, ledger)
        if up.empty:
            if list(up.stamps) != ledger.meta_json("stamps", []):
                ledger.record(meta={"stamps": json.dumps(list(up.stamps))})
            return 0
        client = replace(
            self.client, tell=_progress(report, len(up.new) + len(up.replaced) + bool(up.manifest))
        )
        pusher = Pusher(client, self.spec, self.mirror / machine, self.cache / "outbox", ledger)
        try:
            pusher.push(up, now, cancel, report)
        except BaseException:
            self.forget_check(machine)
            raise
        return up.nbytes


def _progress(report: Report, files: int) -> Callable[[str], None]:
    """What reads rclone's log as it comes: its statistics as the upload's progress."""

    def tell(line: str) -> None:
        entry = parse_line(line)
        stats = stats_of(entry) if entry is not None else None
        if stats is not None and stats.total_transfers:
            report(Step.UPLOADING, min(stats.transfers, files), files, stats.bytes)

    return tell


# A seed takes the whole folder but what repair set aside and the log of another computer's syncs.
_SEED_FILTERS = ("--exclude", "/damaged/**", "--exclude", "/sync.log*")
