"""Watch opencode's data dir with watchdog and post :class:`Changed` events; nothing else.

What is watched: the data dir itself, not recursively (the database, its ``-wal``, and ``storage/``
appearing), and ``storage/`` recursively (the legacy JSON tree). Everything else there (``log/``,
``snapshot/``, ``bin/``, ``tool-output/``, ``auth.json``, the ``-shm`` file that readers touch)
is ignored. While the data dir does not exist, its nearest existing ancestor is watched until it
appears.

watchdog's default inotify mask includes IN_OPEN and IN_CLOSE_NOWRITE; its own scan of a big tree
opens every directory, overflows the kernel queue, rescans, and never delivers an event (the trap
that hits 7.1.0 on large trees). We pass an ``event_filter`` without those event types, and pin
watchdog < 7.1. Close events are left out too: our own read-only SQLite connection opens the WAL
read-write, so its close would look like a change after every sync (a real write also sends a
modify event).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path, PurePath

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from app.service.events import Changed, Event

logger = logging.getLogger(__name__)

# watchdog's inotify thread warns when a folder created inside a recursive watch is added twice (by its
# own walk and by the folder's create event, a race it then resolves by keeping one callback). Harmless,
# but under `-W error` (or PYTHONWARNINGS=error) that warning is raised inside its thread, which dies and
# leaves the watch silent. Never a reason to stop watching.
WATCHDOG_RACE = r"Callback with id .* already exists for watch"
warnings.filterwarnings("ignore", message=WATCHDOG_RACE, category=RuntimeWarning)

STORAGE = "storage"
EVENT_FILTER = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


def classify(data_dir: Path, path: str) -> Changed | None:
    """The Changed event for a path that changed (None when it is not ours to back up). Pure."""
    try:
        rel = PurePath(os.path.relpath(path, data_dir))
    except ValueError:  # another drive on Windows
        return None
    parts = rel.parts
    if not parts or parts[0] in (os.curdir, os.pardir):
        return None
    if parts[0] == STORAGE:
        return Changed(paths=(rel.as_posix(),)) if len(parts) > 1 else Changed(appeared=True)
    if len(parts) == 1 and _is_database(parts[0]):
        return Changed()
    return None


def _is_database(name: str) -> bool:
    return name.startswith("opencode") and (name.endswith(".db") or name.endswith(".db-wal"))


# how often the observer's threads are looked at: one that died (an exception in watchdog's reader or in
# our handler) would otherwise leave the watch silent until the periodic full walk, hours later
SUPERVISE_EVERY = 30.0


class Watcher:
    """Owns a watchdog Observer (its threads) for one data dir. Events go to ``post``. A supervisor
    thread replaces an observer whose threads died and posts ``Changed(appeared=True)``: a full walk
    finds what changed while nothing was watched."""

    def __init__(
        self,
        data_dir: Path,
        post: Callable[[Event], None],
        extra_db: Path | None = None,
        supervise_every: float = SUPERVISE_EVERY,
    ) -> None:
        self.data_dir = data_dir
        self._post = post
        self._extra_db = extra_db  # OPENCODE_DB outside the data dir
        self._lock = threading.Lock()
        self._observer: BaseObserver = Observer()
        self._watches: dict[tuple[str, bool], ObservedWatch] = {}
        self._handler = _Handler(self)
        self._every = supervise_every
        self._stopped = threading.Event()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        """Schedule the watches and start the observer threads and the supervisor."""
        self._arm()
        self._observer.start()
        self._supervisor = threading.Thread(target=self._supervise, name="watch-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self) -> None:
        """Stop and join the observer threads and the supervisor (any thread but the observer's own)."""
        self._stopped.set()
        if self._supervisor is not None and self._supervisor is not threading.current_thread():
            self._supervisor.join(timeout=5)
        with self._lock:
            observer = self._observer
        observer.stop()
        if observer.ident is not None:
            observer.join(timeout=5)

    def healthy(self) -> bool:
        """The observer's thread and each watch's reader are still running."""
        observer = self._observer
        return observer.is_alive() and all(emitter.is_alive() for emitter in list(observer.emitters))

    def _supervise(self) -> None:
        while not self._stopped.wait(self._every):
            if self.healthy():
                continue
            logger.warning("the file watcher stopped; starting it again and looking at everything")
            try:
                with self._lock:
                    old, self._observer, self._watches = self._observer, Observer(), {}
                old.stop()  # whatever of it still runs
                self._arm()
                self._observer.start()
            except Exception:  # tried again at the next look; the periodic full walk still runs
                logger.exception("could not start the file watcher again")
                continue
            self._post(Changed(appeared=True))

    def _arm(self) -> bool:
        """Watch what exists now: the data dir and storage/, or the nearest ancestor (observer thread).

        A folder can appear between looking for it and watching its parent (``mkdir -p`` does both
        levels at once), and its creation event is then lost; so look again after every change of
        watches until what exists and what is watched agree. True when the data dir is watched.
        """
        with self._lock:
            for _ in range(8):  # bounded: a folder that cannot be watched must not spin us
                wanted = self._wanted()
                if set(wanted) == set(self._watches):
                    break
                self._apply(wanted)
            return (str(self.data_dir), False) in self._watches

    def _wanted(self) -> list[tuple[str, bool]]:
        wanted: list[tuple[str, bool]] = []
        if self.data_dir.is_dir():
            wanted.append((str(self.data_dir), False))
            if (self.data_dir / STORAGE).is_dir():
                wanted.append((str(self.data_dir / STORAGE), True))
        else:
            ancestor = self.data_dir.parent
            while not ancestor.is_dir() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            wanted.append((str(ancestor), False))
        if self._extra_db is not None and self._extra_db.parent.is_dir():
            wanted.append((str(self._extra_db.parent), False))
        return wanted

    def _apply(self, wanted: list[tuple[str, bool]]) -> None:
        for key in set(self._watches) - set(wanted):
            self._observer.unschedule(self._watches.pop(key))
        for key in wanted:
            if key not in self._watches:
                try:
                    self._watches[key] = self._observer.schedule(
                        self._handler, key[0], recursive=key[1], event_filter=EVENT_FILTER
                    )
                    logger.debug("watching %s (recursive=%s)", key[0], key[1])
                except OSError as exc:
                    logger.warning("cannot watch %s: %s", key[0], exc)

    def on_path(self, path: str, is_dir: bool, event_type: str) -> None:
        """Turn one changed path into a Changed event (observer thread)."""
        storage = str(self.data_dir / STORAGE)
        in_storage = path.startswith(storage + os.sep)
        if is_dir and event_type in ("created", "deleted", "moved") and not in_storage:
            storage_key = (storage, True)
            was_armed = (str(self.data_dir), False) in self._watches
            had_storage = storage_key in self._watches
            armed = self._arm()
            # a folder that appeared (the data dir, or storage/ inside it) may already hold files written
            # before its watch was in place: a full walk finds them now, not at the next periodic one
            if armed and (not was_armed or (not had_storage and storage_key in self._watches)):
                self._post(Changed(appeared=True))
            return
        if is_dir and event_type == "modified":
            return
        if path.endswith("-wal") and event_type in ("created", "deleted"):
            # SQLite makes an empty WAL whenever anyone opens the database (we do too); data comes as writes
            return
        if self._extra_db is not None and path in (str(self._extra_db), f"{self._extra_db}-wal"):
            self._post(Changed())
            return
        changed = classify(self.data_dir, path)
        if changed is not None:
            self._post(changed)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, event.dest_path):
            if raw:
                path = os.fsdecode(raw)
                self._watcher.on_path(path, event.is_directory, event.event_type)
