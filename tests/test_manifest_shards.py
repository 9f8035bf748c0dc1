"""The session shards a save writes are rebuilt only where entries changed, and always equal a rebuild of
every shard from scratch."""

from __future__ import annotations

import random

from app.backup.manifest.model import (
    SESSION_SHARDS,
    Manifest,
    SessionEntry,
    _compact,
    session_shard_of,
)


def from_scratch(man: Manifest) -> dict[str, str]:
    parts: dict[str, list[str]] = {f"sessions-{i:02x}": [] for i in range(SESSION_SHARDS)}
    for sid in sorted(man.sessions):
        parts[session_shard_of(sid)].append(_compact(sid) + ":" + _compact(vars(man.sessions[sid])))
    return {name: "{" + ",".join(p) + "}" for name, p in parts.items()}


def entry(n: int) -> SessionEntry:
    return SessionEntry(f"sessions/p/s{n}.json", "p", "title", "/dir", n, str(n), n, "0" * 64)


def test_incremental_shard_texts_equal_a_rebuild_through_adds_changes_and_removals() -> None:
    rng = random.Random(13)
    man = Manifest(machine="m")
    man.sessions.update({f"ses_{i}": entry(i) for i in range(300)})
    for step in range(300):
        assert man.session_shard_texts() == from_scratch(man), step
        sid = f"ses_{rng.randrange(400)}"
        roll = rng.random()
        if roll < 0.3:
            man.sessions.pop(sid, None)
        elif roll < 0.6:
            man.sessions[sid] = entry(rng.randrange(10**6))
        else:  # one lost and one new in the same sync: the count stays the same
            man.sessions.pop(sid, None)
            man.sessions[f"ses_{rng.randrange(400, 800)}"] = entry(step)
