"""One service per user, and how the command line reaches it.

**Single instance**: ``<state>/service/service.lock`` is locked (``flock`` / ``msvcrt.locking``) for the
service's whole life. The OS drops the lock when the process dies, so a stale lock left by a crash
is simply taken over; a held lock means a live service.

**Commands**: a spool folder. The command line writes one small JSON file per command into
``<state>/service/inbox/`` (temp name + rename, so the service never reads half a file); the service's
control thread polls the folder twice a second, deletes each file and posts the matching event. A
``sync`` request gets its answer as ``<state>/service/replies/<id>.json``. Why files: they work the
same on Linux, macOS and Windows with no ports, no socket paths or named-pipe ACLs, no listener to
keep alive, and the folder is private to the user (0700); a listing of an empty folder twice a second
costs microseconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app import codec
from app.backup.result import SyncResult
from app.fsutil import atomic_write_bytes, make_private_dirs
from app.platform.lock import ProcessLock
from app.service.events import Event, Pause, Resume, SyncNow

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
COMMANDS = ("pause", "resume", "sync-now", "sync")


def service_dir(state_dir: Path) -> Path:
    return state_dir / "service"


class InstanceLock(ProcessLock):
    """The single-instance lock; hold it for the service's lifetime."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(service_dir(state_dir) / "service.lock")


def service_running(state_dir: Path) -> bool:
    """True when a live service holds the instance lock (any process, including this one)."""
    if not (service_dir(state_dir) / "service.lock").exists():
        return False
    probe = InstanceLock(state_dir)
    if probe.acquire():
        probe.release()
        return False
    return True


def send(state_dir: Path, command: str, **args: Any) -> str:
    """Drop one command for the running service; returns its request id (command-line side)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown service command {command!r}")
    rid = uuid.uuid4().hex
    inbox = service_dir(state_dir) / "inbox"
    make_private_dirs(inbox)
    body = json.dumps({"command": command, "id": rid, **args}).encode()
    atomic_write_bytes(inbox / f"{time.time_ns()}-{rid}.json", body, fsync=False)
    return rid


def wait_reply(
    state_dir: Path,
    rid: str,
    timeout: float,
    poll: float = 0.2,
    meanwhile: Callable[[], None] = lambda: None,
) -> SyncResult | None:
    """Wait for the answer to request ``rid``; None on timeout or when the service went away.
    ``meanwhile`` runs between two looks (the ``sync`` command shows the service's progress)."""
    path = service_dir(state_dir) / "replies" / f"{rid}.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            raw = path.read_bytes()
            path.unlink()
            try:
                return codec.loads(SyncResult, raw)
            except codec.CodecError as exc:
                logger.warning("unreadable answer from the backup service: %s", exc)
                return None
        if not service_running(state_dir):
            return None
        meanwhile()
        time.sleep(poll)
    return None


def write_reply(state_dir: Path, rid: str, result: SyncResult) -> None:
    """Answer a ``sync`` request (service thread)."""
    replies = service_dir(state_dir) / "replies"
    try:
        make_private_dirs(replies)
        atomic_write_bytes(replies / f"{rid}.json", codec.dumps(result), fsync=False)
    except OSError as exc:
        logger.warning("could not answer sync request %s: %s", rid, exc)


def to_event(data: dict[str, Any]) -> Event | None:
    """The event for one command file's JSON (None when it is not a valid command). Pure."""
    command = data.get("command")
    if command == "pause":
        return Pause()
    if command == "resume":
        return Resume()
    if command == "sync-now":
        return SyncNow()
    if command == "sync":
        rid = data.get("id")
        return SyncNow(
            snapshot=bool(data.get("snapshot")),
            allow_deletions=bool(data.get("allow_deletions")),
            request_id=rid if isinstance(rid, str) else None,
        )
    return None


class ControlThread:
    """Polls the inbox and posts the events; owns one thread with a stop event."""

    def __init__(self, state_dir: Path, post: Callable[[Event], None], poll: float = POLL_SECONDS) -> None:
        self._inbox = service_dir(state_dir) / "inbox"
        self._post = post
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="backup-control", daemon=True)

    def start(self) -> None:
        """Forget commands left from an earlier run, then start polling."""
        make_private_dirs(self._inbox)
        for old in self._inbox.iterdir():
            with contextlib.suppress(OSError):
                old.unlink()
        make_private_dirs(self._inbox.parent / "replies")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        """The control thread's body."""
        while not self._stop.wait(self._poll):
            try:
                names = sorted(n for n in os.listdir(self._inbox) if n.endswith(".json"))
            except OSError:
                continue
            for name in names:
                path = self._inbox / name
                try:
                    data = json.loads(path.read_bytes())
                    path.unlink()
                except (OSError, ValueError, RecursionError):  # not ours, or damaged: dropped
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                event = to_event(data) if isinstance(data, dict) else None
                if event is not None:
                    logger.info("command received: %s", data.get("command"))
                    self._post(event)
