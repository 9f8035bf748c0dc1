"""The session shards a save writes are rebuilt only where entries changed, and always equal a rebuild of
every shard from scratch; storage shards this process checked are not checked again while unchanged."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from app.backup.manifest import (
    ManifestCache,
    ManifestStore,
    ShardText,
    load,
    load_shard,
    load_shard_text,
    passes_checks,
    save,
    write,
)
from app.backup.manifest.model import (
    SESSION_SHARDS,
    SHARD_DIR,
    FileEntry,
    Manifest,
    SessionEntry,
    encoded_entry,
    session_path,
    session_shard_of,
    shard_of,
)
from app.backup.manifest.shard_text import canonical
from app.errors import BackupDamaged, BackupMoved


def from_scratch(man: Manifest) -> dict[str, str]:
    parts: dict[str, list[str]] = {f"sessions-{i:02x}": [] for i in range(SESSION_SHARDS)}
    for sid in sorted(man.sessions):
        parts[session_shard_of(sid)].append(encoded_entry(sid, man.sessions[sid]))
    return {name: "{" + ",".join(p) + "}" for name, p in parts.items()}


def entry(n: int) -> SessionEntry:
    return SessionEntry(f"sessions/p/s{n}.json", "p", "title", "/dir", n, str(n), n, "0" * 64)


def test_incremental_shard_texts_and_marks_equal_a_rebuild_through_adds_changes_and_removals() -> None:
    """The cache builds again only what the changes it is told of touch; whatever the mix of changes,
    and also when it is told it does not know (None), it equals a build from scratch."""
    rng = random.Random(13)
    man = Manifest(machine="m")
    man.sessions.update({f"ses_{i}": entry(i) for i in range(300)})
    cache = ManifestCache()
    for step in range(600):
        if step % 3:  # the texts and the marks are kept from the changes noted, not from a scan
            assert cache.shard_texts(man) == from_scratch(man), step
        else:
            assert cache.marks(man) == {sid: e.mark for sid, e in man.sessions.items()}, step
        sid, other = f"ses_{rng.randrange(400)}", f"ses_{rng.randrange(400, 800)}"
        roll = rng.random()
        if roll < 0.3:
            man.sessions.pop(sid, None)
        elif roll < 0.6:
            man.sessions[sid] = entry(rng.randrange(10**6))
        elif roll < 0.62:
            man.sessions.clear()
            cache.note(None)  # not told which: everything is looked at
            continue
        else:  # one lost and one new in the same sync: the count stays the same
            man.sessions.pop(sid, None)
            man.sessions[other] = entry(step)
        cache.note({sid, other})


def test_a_checked_storage_shard_is_read_back_unchecked_and_a_changed_one_in_full(tmp_path: Path) -> None:
    """A warm sync reads back a storage shard it wrote (or checked) without the per-entry checks; the
    bytes are still hashed against manifest.json, so one changed outside fails as before."""
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    rel = "storage/message/ses_1/msg_1.json"
    shard = shard_of(rel)
    entries = {rel: FileEntry(3, "a" * 64, 5)}
    cache = ManifestCache()
    save(machine_dir, man, {shard: entries}, checked={shard}, cache=cache)
    ref = man.shards[f"storage-{shard}"]
    assert (f"storage-{shard}", ref.sha256) in cache.checked
    assert load_shard(machine_dir, man, shard, cache.checked) == entries
    fresh = load(machine_dir, "m")  # another process: checks every entry, then remembers the digest
    theirs: set[tuple[str, str]] = set()
    assert load_shard(machine_dir, fresh, shard, theirs) == entries
    assert (f"storage-{shard}", ref.sha256) in theirs
    path = machine_dir / SHARD_DIR / ref.file
    path.write_bytes(path.read_bytes().replace(b"ses_1", b"ses_2"))  # same size, other bytes
    with pytest.raises(BackupDamaged, match="does not match"):
        load_shard(machine_dir, man, shard, cache.checked)


def test_a_shard_given_an_entry_the_reader_would_refuse_is_not_remembered_as_checked(tmp_path: Path) -> None:
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    bad = "storage/message/a:b.json"  # ':' is refused by the reader (Windows cannot hold it)
    assert not passes_checks(shard_of(bad), bad, FileEntry(1, "b" * 64, 0))
    assert not passes_checks("00" if shard_of(bad) != "00" else "01", bad, FileEntry(1, "b" * 64, 0))
    good = "storage/message/ses_1/msg_2.json"
    assert passes_checks(shard_of(good), good, FileEntry(1, "b" * 64, 0))
    cache = ManifestCache()
    save(machine_dir, man, {shard_of(bad): {bad: FileEntry(1, "b" * 64, 0)}}, checked=(), cache=cache)
    assert not cache.checked
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


def own(sid: str, n: int) -> SessionEntry:
    return SessionEntry(session_path("p", sid), "p", "title", "/dir", n, str(n), n, "0" * 64)


def test_changes_ride_in_the_manifest_delta_and_fold_into_the_shards_when_it_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the mix of saves with and without a fold, another process reads exactly the sessions and
    storage entries the writer holds; a save that does not fold writes manifest.json and nothing else."""
    monkeypatch.setattr(write, "MAX_DELTA_BYTES", 3000)
    rng = random.Random(5)
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    cache = ManifestCache(committed={}, base={})  # a new backup: nothing committed yet
    storage: dict[str, dict[str, FileEntry]] = {}  # what the writer holds, by shard
    folds = 0
    for step in range(120):
        changed: dict[str, ShardText] = {}
        for _ in range(rng.randrange(4)):
            sid = f"ses_{rng.randrange(60)}"
            cache.note({sid})
            if rng.random() < 0.25:
                man.sessions.pop(sid, None)
            else:
                man.sessions[sid] = own(sid, rng.randrange(10**6))
        for _ in range(rng.randrange(4)):
            rel = f"storage/message/ses_{rng.randrange(9)}/msg_{rng.randrange(40)}.json"
            shard = shard_of(rel)
            text = changed.setdefault(shard, load_shard_text(machine_dir, man, shard, cache.checked))
            if rng.random() < 0.25:
                text.pop(rel, None)
                storage.get(shard, {}).pop(rel, None)
            else:
                text[rel] = storage.setdefault(shard, {})[rel] = FileEntry(rng.randrange(99), "c" * 64, step)
        shard_dir = machine_dir / SHARD_DIR
        before = set(shard_dir.iterdir()) if shard_dir.exists() else set()
        save(machine_dir, man, changed, checked=set(changed), cache=cache)
        head = json.loads((machine_dir / "manifest.json").read_text())
        now = set(shard_dir.iterdir()) if shard_dir.exists() else set()
        if head["delta"] == {"sessions": {}, "storage": {}}:
            folds += 1
        else:
            assert now <= before, step  # nothing but manifest.json written (old shards may go)
        fresh = load(machine_dir, "m")
        assert fresh.sessions == man.sessions, step
        for shard, entries in storage.items():
            assert load_shard(machine_dir, fresh, shard) == entries, (step, shard)
    assert folds >= 3  # the delta did grow past its size and was folded, more than once


@pytest.mark.parametrize(
    ("delta", "refused"),
    [
        (
            {"sessions": {"ses_1": {**vars(entry(1)), "path": "../../outside.json"}}},
            "outside|refusing|not its own",
        ),
        ({"sessions": {"../x": None}}, "not a session id"),
        ({"storage": {"storage/../../x.json": [1, "a" * 64, 0]}}, "refusing|outside|\\.\\."),
        ({"storage": {"storage/a.json": [1, "not a digest", 0]}}, "sha256|digest"),
        ({"storage": {"storage/a.json": "rm -rf"}}, "not \\[size, sha256, mtime\\]"),
        ({"sessions": []}, "not an object|object"),
    ],
)
def test_a_hostile_delta_in_manifest_json_is_refused_in_one_line(
    tmp_path: Path, delta: dict[str, object], refused: str
) -> None:
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    man.sessions["ses_1"] = own("ses_1", 1)
    save(machine_dir, man)
    path = machine_dir / "manifest.json"
    head = json.loads(path.read_text())
    head["delta"] = delta
    head["session_count"] = 1
    path.write_text(json.dumps(head))
    with pytest.raises(BackupDamaged, match=refused) as caught:
        man2 = load(machine_dir, "m")
        for shard in {shard_of(r) for r in delta.get("storage", {}) or {}}:  # type: ignore[union-attr]
            load_shard(machine_dir, man2, shard)
    assert "\n" not in str(caught.value)


def test_a_format_2_manifest_is_read_and_the_next_save_writes_format_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the previous version wrote (no delta: every entry in its shard) is read as it was."""
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    man.sessions.update({f"ses_{i}": own(f"ses_{i}", i) for i in range(40)})
    with monkeypatch.context() as m:
        m.setattr(write, "MAX_DELTA_BYTES", 0)  # folded: the shards hold everything
        save(machine_dir, man)
    path = machine_dir / "manifest.json"
    head = json.loads(path.read_text())
    assert head.pop("delta") == {"sessions": {}, "storage": {}}
    head["format"] = "opencode-session-backup-manifest/2"
    path.write_text(json.dumps(head))
    store = ManifestStore()
    old = store.load(machine_dir, "m")
    assert old.sessions == man.sessions
    old.sessions["ses_0"] = own("ses_0", 99)
    store.save(machine_dir, old, {"ses_0"})
    head = json.loads(path.read_text())
    assert head["format"].endswith("/3") and list(head["delta"]["sessions"]) == ["ses_0"]
    assert load(machine_dir, "m").sessions == old.sessions


def test_shards_a_fold_wrote_are_read_back_without_the_per_entry_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold writes shards this sync did not touch (their changes came from the delta): they were built
    from checked entries, so reading them back costs a hash, not ~400 checks (~3 ms a shard)."""
    monkeypatch.setattr(write, "MAX_DELTA_BYTES", 1 << 20)
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    cache = ManifestCache()
    rels = [f"storage/message/ses_1/msg_{i}.json" for i in range(200)]
    for rel in rels:  # one save per file: the delta gathers them all
        text = load_shard_text(machine_dir, man, shard_of(rel), cache.checked)
        text[rel] = FileEntry(1, "d" * 64, 0)
        save(machine_dir, man, {shard_of(rel): text}, checked={shard_of(rel)}, cache=cache)
    assert not man.shards and man.storage_delta
    monkeypatch.setattr(write, "MAX_DELTA_BYTES", 0)
    save(machine_dir, man, cache=cache)  # folds every shard, none of them touched by this save
    assert not man.storage_delta and len(man.shards) == len({shard_of(r) for r in rels})
    assert all((name, ref.sha256) in cache.checked for name, ref in man.shards.items())
    assert load(machine_dir, "m").storage_delta == {}


def test_a_fold_that_cannot_read_a_damaged_shard_keeps_its_changes_in_the_delta_and_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard a cloud client mangled must not stop every commit from then on: the fold writes the others,
    the mangled one's changes stay in manifest.json (verify names the damage)."""
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    rels = [f"storage/message/ses_1/msg_{i}.json" for i in range(40)]
    by_shard: dict[str, dict[str, FileEntry]] = {}
    for rel in rels:
        by_shard.setdefault(shard_of(rel), {})[rel] = FileEntry(1, "e" * 64, 0)
    save(machine_dir, man, by_shard, checked=set(by_shard))  # full mappings: written as shards
    victim = shard_of(rels[0])
    changed = {rels[0]: FileEntry(2, "f" * 64, 1), rels[1]: FileEntry(3, "f" * 64, 1)}
    texts = {shard_of(rel): load_shard_text(machine_dir, man, shard_of(rel)) for rel in changed}
    for rel, e in changed.items():
        texts[shard_of(rel)][rel] = e
    save(machine_dir, man, texts, checked=set(texts))  # kept in the delta
    damaged = machine_dir / SHARD_DIR / man.shards[f"storage-{victim}"].file
    damaged.write_bytes(b"{}" + damaged.read_bytes()[2:])
    fresh = load(machine_dir, "m")
    monkeypatch.setattr(write, "MAX_DELTA_BYTES", 0)
    save(machine_dir, fresh)  # folds: the victim cannot be read
    head = json.loads((machine_dir / "manifest.json").read_text())
    assert set(head["delta"]["storage"]) == {r for r in changed if shard_of(r) == victim}
    again = load(machine_dir, "m")
    for rel, e in changed.items():
        if shard_of(rel) != victim:
            assert load_shard(machine_dir, again, shard_of(rel))[rel] == e
    with pytest.raises(BackupDamaged, match="does not match"):
        load_shard(machine_dir, again, victim)


def test_a_shard_the_manifest_names_that_is_gone_is_a_moved_backup_worth_reading_again(
    tmp_path: Path,
) -> None:
    """A shard missing under a committed manifest (a sync or an upload committing meanwhile) raises
    BackupMoved, which readers retry, not plain damage."""
    machine_dir = tmp_path / "m"
    man = Manifest(machine="m")
    man.sessions["ses_1"] = entry(1)
    rel = "storage/message/ses_1/msg_1.json"
    shard = shard_of(rel)
    save(machine_dir, man, {shard: {rel: FileEntry(3, "a" * 64, 5)}}, checked={shard})
    (machine_dir / SHARD_DIR / man.shards[f"storage-{shard}"].file).unlink()
    with pytest.raises(BackupMoved, match="missing"):
        load_shard(machine_dir, man, shard)
    for ref in man.shards.values():
        (machine_dir / SHARD_DIR / ref.file).unlink(missing_ok=True)
    with pytest.raises(BackupMoved, match="missing"):
        load(machine_dir, "m")
