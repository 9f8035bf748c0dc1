"""What a process keeps of one machine folder's manifest between its syncs, so a warm sync does the work of
what changed only. Owned by the :class:`~app.backup.manifest.store.ManifestStore` that loads and saves
that manifest; the :class:`~app.backup.manifest.model.Manifest` itself stays a plain value.

- the session shards' texts as committed, and the entries each lists (a save writes only the shards that
  differ, and puts only the entries that differ from their shard into the delta);
- each session's encoded entry and the text each shard is built to (a save re-encodes the entries a sync
  changed, not 1,800: 3 ms of a 17 ms sync before);
- each session's mark (what a plan compares first: a Python loop over 1,800 took ~0.8 ms);
- the storage shards whose bytes passed every check (read again, the same bytes are not checked entry by
  entry again: 5 shards of ~400 entries took 5 ms of a 20 ms sync; the bytes are still hashed, so a shard
  changed outside is checked in full);
- the shard files the last save stopped naming, and whether manifest.d/ was swept since the load;
- the versions this process made since it last thinned them, and when that was (a warm service thins at
  most once a minute, not after each of the syncs a chat brings: ~0.6 ms each).

The changed ids come from the sync that changed them (:meth:`ManifestCache.note`); without them (a manifest
loaded fresh, or changed by someone who did not say) everything is rebuilt from the entries. Runs on the
thread of the sync that owns the store.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from app.backup.manifest.model import (
    SESSION_SHARDS,
    Manifest,
    SessionEntry,
    ShardRef,
    encoded_entry,
    session_shard_of,
)
from app.backup.manifest.model import (
    marks as marks_of,
)

EMPTY = "{}"


@dataclass
class ManifestCache:
    """See the module's docstring. ``committed``/``base`` are filled by the load that read the shards (or
    the save that wrote them); None there means not known (then a save folds every change into the shards
    instead of keeping a delta over them)."""

    committed: dict[str, str] | None = None  # session shard name -> its text in the file in force
    base: dict[str, dict[str, SessionEntry]] | None = None  # session shard name -> the entries it lists
    checked: set[tuple[str, str]] = field(default_factory=set)  # storage (shard name, sha256) that passed
    ref_lines: dict[str, tuple[ShardRef, str]] = field(default_factory=dict)  # shard -> its manifest line
    retired: set[str] = field(default_factory=set)  # shard files the last save stopped naming
    swept: bool = False  # manifest.d/ swept of every other unnamed shard since the load
    unthinned: set[str] = field(default_factory=set)  # versions made since the last thinning
    thinned_at: datetime | None = None
    # derived from the entries, brought up to date with the ids noted since (None: rebuild from scratch)
    _encoded: dict[str, tuple[SessionEntry, str, str]] = field(
        default_factory=dict
    )  # sid -> entry, json, shard
    _members: dict[str, set[str]] = field(default_factory=dict)
    _built: dict[str, str] = field(default_factory=dict)
    _shards_pending: set[str] | None = None
    _marks: dict[str, str] = field(default_factory=dict)
    _marks_pending: set[str] | None = None

    def note(self, changed: Iterable[str] | None) -> None:
        """The session ids whose entries the owner changed (None: not known, rebuild everything)."""
        if changed is None:
            self._shards_pending = self._marks_pending = None
            return
        ids = set(changed)
        if self._shards_pending is not None:
            self._shards_pending |= ids
        if self._marks_pending is not None:
            self._marks_pending |= ids

    def marks(self, man: Manifest) -> dict[str, str]:
        """Session id -> the mark of its fingerprint, for every session of ``man`` (read only)."""
        pending, self._marks_pending = self._marks_pending, set()
        if pending is None:
            self._marks = marks_of(man)
            return self._marks
        for sid in pending:
            entry = man.sessions.get(sid)
            if entry is None:
                self._marks.pop(sid, None)
            else:
                self._marks[sid] = entry.mark
        return self._marks

    def shard_texts(self, man: Manifest) -> dict[str, str]:
        """Session shard name (``sessions-XX``) -> its JSON text, for every shard (empty ones as ``{}``);
        only the shards whose entries changed since the last call are built again."""
        pending, self._shards_pending = self._shards_pending, set()
        encoded, members = self._encoded, self._members
        if pending is None:
            encoded.clear()
            members.clear()
            members.update({f"sessions-{i:02x}": set() for i in range(SESSION_SHARDS)})
            pending = set(man.sessions)
            dirty = set(members)
        else:
            dirty = set()
        for sid in pending:
            entry = man.sessions.get(sid)
            hit = encoded.get(sid)
            if entry is None:
                if hit is not None:
                    del encoded[sid]
                    members[hit[2]].discard(sid)
                    dirty.add(hit[2])
                continue
            if hit is not None and hit[0] is entry:
                continue
            shard = hit[2] if hit is not None else session_shard_of(sid)
            encoded[sid] = (entry, encoded_entry(sid, entry), shard)
            members[shard].add(sid)
            dirty.add(shard)
        for shard in dirty:
            self._built[shard] = "{" + ",".join(encoded[sid][1] for sid in sorted(members[shard])) + "}"
        return dict(self._built)

    def members(self, shard: str) -> Collection[str]:
        """The sessions :meth:`shard_texts` put in ``shard``."""
        return self._members.get(shard, ())

    def wrote(self, shard: str, text: str, entries: dict[str, SessionEntry]) -> None:
        """A save wrote ``shard`` with ``text``, listing ``entries``: they are what is committed now."""
        if self.committed is not None and self.base is not None:
            self.committed[shard] = text
            self.base[shard] = entries

    def thinning(
        self, versioned: Iterable[str], now: datetime, *, every: float, full: bool
    ) -> set[str] | None:
        """Note the versions a sync made; the paths to thin now (all made since the last thinning), or
        None when the last one was less than ``every`` seconds ago and this one is not ``full``."""
        self.unthinned.update(versioned)
        last = self.thinned_at
        if not full and last is not None and 0 <= (now - last).total_seconds() < every:
            return None
        touched, self.unthinned, self.thinned_at = self.unthinned, set(), now
        return touched
