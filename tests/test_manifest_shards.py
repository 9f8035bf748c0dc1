"""The session shards a save writes are rebuilt only where entries changed, and always equal a rebuild of
every shard from scratch; storage shards this process checked are not checked again while unchanged."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from app.backup.manifest import ShardText, load, load_shard, passes_checks, save
from app.backup.manifest.model import (
    SESSION_SHARDS,
    SHARD_DIR,
    FileEntry,
    Manifest,
    SessionEntry,
    _compact,
    session_shard_of,
    shard_of,
)
from app.backup.manifest.shard_text import canonical
from app.errors import BackupDamaged


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


def test_a_checked_storage_shard_is_read_back_unchecked_and_a_changed_one_in_full(tmp_path: Path) -> None:
    """A warm sync reads back a storage shard it wrote (or checked) without the per-entry checks; the
    bytes are still hashed against manifest.json, so one changed outside fails as before."""
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    rel = "storage/message/ses_1/msg_1.json"
    shard = shard_of(rel)
    entries = {rel: FileEntry(3, "a" * 64, 5)}
    save(machine_dir, man, {shard: entries}, checked={shard})
    ref = man.shards[f"storage-{shard}"]
    assert (f"storage-{shard}", ref.sha256) in man._checked
    assert load_shard(machine_dir, man, shard) == entries
    fresh = load(machine_dir, "m")  # another process: checks every entry, then remembers the digest
    assert not fresh._checked
    assert load_shard(machine_dir, fresh, shard) == entries
    assert (f"storage-{shard}", ref.sha256) in fresh._checked
    path = machine_dir / SHARD_DIR / ref.file
    path.write_bytes(path.read_bytes().replace(b"ses_1", b"ses_2"))  # same size, other bytes
    with pytest.raises(BackupDamaged, match="does not match"):
        load_shard(machine_dir, man, shard)


def test_a_shard_given_an_entry_the_reader_would_refuse_is_not_remembered_as_checked(tmp_path: Path) -> None:
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    bad = "storage/message/a:b.json"  # ':' is refused by the reader (Windows cannot hold it)
    assert not passes_checks(shard_of(bad), bad, FileEntry(1, "b" * 64, 0))
    assert not passes_checks("00" if shard_of(bad) != "00" else "01", bad, FileEntry(1, "b" * 64, 0))
    good = "storage/message/ses_1/msg_2.json"
    assert passes_checks(shard_of(good), good, FileEntry(1, "b" * 64, 0))
    save(machine_dir, man, {shard_of(bad): {bad: FileEntry(1, "b" * 64, 0)}}, checked=())
    assert not man._checked
    with pytest.raises(BackupDamaged):
        load_shard(machine_dir, man, shard_of(bad))


def test_a_shard_text_changed_in_place_equals_the_shard_encoded_anew() -> None:
    """Lookups, changes, additions and removals on the text of a shard give exactly the bytes a save
    encodes from the entries, with keys that hold quotes, backslashes, '],"', ':[' and non-ASCII."""
    rng = random.Random(7)
    alphabet = ["a", "b", "z", "/", '"', "\\", "é", '],"', ":[", "{", "}", ",", "\u2603", "0"]

    def rel() -> str:
        return "storage/" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 6)))

    def fentry() -> FileEntry:
        return FileEntry(
            rng.randrange(10**6), f"{rng.getrandbits(256):064x}", rng.randrange(-(10**18), 10**18)
        )

    for trial in range(1500):
        expected = {rel(): fentry() for _ in range(rng.randrange(8))}
        text = ShardText(canonical(expected))
        for _ in range(rng.randrange(6)):
            key = rng.choice([*expected, rel()]) if expected and rng.random() < 0.6 else rel()
            roll = rng.random()
            if roll < 0.3:
                assert text.pop(key, None) == expected.pop(key, None)
            elif roll < 0.8:
                expected[key] = text[key] = fentry()
            else:
                assert text.get(key) == expected.get(key)
            assert (key in text) == (key in expected)
        assert text.text() == canonical(expected), trial
        assert dict(text) == expected


def test_saves_keep_the_shards_named_now_and_by_the_replaced_manifest_and_remove_the_rest(
    tmp_path: Path,
) -> None:
    """The first save of a loaded manifest sweeps manifest.d/ of unnamed shards (what a crashed sync
    left); the next ones remove exactly the shards the save before them stopped naming."""
    machine_dir = tmp_path / "m"
    shard_dir = machine_dir / SHARD_DIR
    shard_dir.mkdir(parents=True)
    (shard_dir / f"storage-00.{'0' * 16}.json").write_text("{}")  # left by a crash
    man = Manifest(machine="m")
    named: list[set[str]] = []
    for step in range(4):
        man.sessions[f"ses_{step}"] = entry(step)
        save(machine_dir, man)
        named.append({r.file for r in man.shards.values()})
        expected = named[-1] | (named[-2] if step else set())
        assert {p.name for p in shard_dir.iterdir()} == expected, step
