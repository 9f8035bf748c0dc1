"""opencode 2.0 users get a backup that holds their sessions, beside 1.x ones: backed up, listed, restored.

The databases are opencode 2.0.26's, made from sessions the real opencode 1.18.33 wrote (tests/opencode2/:
2.0.26's migrations, its importer, native sessions as its projector writes them); no 2.0 binary runs here.
Each test works on its own copy, through the command line as a user runs it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.opencode2 import make_v2
from tests.peer.opencode import OpencodePeer

pytestmark = pytest.mark.opencode
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Templates:
    """Databases made once per module: the 1.x source, it upgraded to 2.0.26, a fresh 2.0.26 install."""

    v1: Path
    upgraded: make_v2.Made
    fresh: make_v2.Made
    titles: dict[str, str]


@pytest.fixture(scope="module")
def templates(opencode_peer: OpencodePeer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    peer = opencode_peer
    readme = peer.project / "README.md"
    sids = [peer.create_session(f"imported {i}", prompts=2, todo=i == 1) for i in range(2)]
    sid = str(peer.api("POST", "/session", {"title": "read the readme"})["id"])
    peer.prompt(sid, f"READFILE {readme} and tell me about it")
    peer.wait_settled(sid)
    sids.append(sid)
    sids.append(peer.create_session("written by 1.x after the upgrade", prompts=1, todo=False))
    out = tmp_path_factory.mktemp("opencode2")
    v1 = out / "v1.db"
    src = peer.connect()
    dst = sqlite3.connect(v1)
    src.backup(dst)
    src.close()
    dst.close()
    titles = dict(sqlite3.connect(v1).execute("SELECT id, title FROM session").fetchall())
    upgraded = make_v2.upgrade(v1, out / "upgraded.db", late_v1=1, native=3)
    fresh = make_v2.fresh(v1, out / "fresh.db", native=3)
    assert upgraded.late_v1 == [sids[-1]] and len(upgraded.imported) == 3
    yield Templates(v1, upgraded, fresh, titles)


@dataclass
class World:
    """One user's machine: opencode's data folder with a database, and a backup folder."""

    home: Path
    data: Path
    backup: Path

    @property
    def db(self) -> Path:
        return self.data / "opencode.db"

    @property
    def machine(self) -> Path:
        return self.backup / "m1"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "app", *args, "--backup-path", str(self.backup), "--machine-name", "m1"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check:
            assert res.returncode == 0, res.stdout + res.stderr
        return res

    def sql(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def files(self) -> dict[str, dict[str, Any]]:
        """Session id -> the session file in sessions/."""
        return {p.stem: json.loads(p.read_text()) for p in (self.machine / "sessions").glob("*/*.json")}


def world_with(db: Path, isolated_home: Path, tmp_path: Path) -> World:
    w = World(isolated_home, isolated_home / ".local/share/opencode", tmp_path / "backup")
    w.data.mkdir(parents=True)
    w.backup.mkdir(parents=True)
    src = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    dst = sqlite3.connect(w.db)
    src.backup(dst)
    src.close()
    dst.execute("PRAGMA journal_mode=WAL")
    dst.close()
    return w


@pytest.fixture
def upgraded(templates: Templates, isolated_home: Path, tmp_path: Path) -> World:
    return world_with(templates.upgraded.path, isolated_home, tmp_path)


def test_every_session_of_an_upgraded_database_is_backed_up_once_in_the_store_it_lives_in(
    upgraded: World, templates: Templates
) -> None:
    made = templates.upgraded
    res = upgraded.cli("sync", "--json")
    result = json.loads(res.stdout)
    assert result["outcome"] == "ok" and result["sessions_total"] == 7 == len(made.sessions)
    files = upgraded.files()
    assert sorted(files) == sorted(made.sessions)
    for sid, _n, watermark in made.imported:  # imported by 2.0: they live there now
        doc = files[sid]
        assert doc["store"] == "v2" and doc["format"] == "opencode-session-backup/2"
        assert "session" not in doc["rows"] and len(doc["rows"]["session_v2"]) == 1
        assert doc["rows"]["event_sequence"] == [{"aggregate_id": sid, "seq": watermark, "owner_id": None}]
    for sid in made.native:
        rows = files[sid]["rows"]
        assert files[sid]["store"] == "v2"
        assert {"session_message", "event", "event_sequence", "project"} <= rows.keys()
    hashes = {r["hash"] for sid in made.native for r in files[sid]["rows"].get("instruction_blob", [])}
    named = {
        h
        for sid in made.native
        for s in files[sid]["rows"].get("instruction_state", [])
        for h in json.loads(s["current_values"]).values()
    }
    assert hashes and hashes == named  # the shared blobs each session names, and only those
    late = files[made.late_v1[0]]
    assert (
        late["store"] == "v1" and late["format"] == "opencode-session-backup/1" and "message" in late["rows"]
    )
    listed = json.loads(upgraded.cli("list", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(made.sessions)
    assert all(r["in_opencode"] for r in listed)
    status = json.loads(upgraded.cli("status", "--json").stdout)
    assert status["sessions_backed_up"] == 7
    assert upgraded.cli("verify").returncode == 0


def test_a_fresh_2_0_install_is_backed_up(templates: Templates, isolated_home: Path, tmp_path: Path) -> None:
    w = world_with(templates.fresh.path, isolated_home, tmp_path)
    result = json.loads(w.cli("sync", "--json").stdout)
    assert result["outcome"] == "ok" and result["sessions_total"] == 3
    assert sorted(w.files()) == sorted(templates.fresh.native)


def test_a_reply_streaming_into_a_message_in_place_is_backed_up(
    upgraded: World, templates: Templates
) -> None:
    """2.0 rewrites a session_message row while a reply streams: its data and time_updated change, the
    count does not; the session row is not touched. Seen in a session in use, and in an old one, whose
    watermark the event moved."""
    hot, cold = templates.upgraded.native[0], templates.upgraded.native[1]
    upgraded.sql("UPDATE session_v2 SET time_updated = 1000 WHERE id = ?", cold)  # long ago
    upgraded.cli("sync")
    (mid, data) = upgraded.sql(
        "SELECT id, data FROM session_message WHERE session_id = ? AND type = 'assistant' "
        "ORDER BY seq DESC LIMIT 1",
        hot,
    )[0]
    streamed = json.loads(data)
    streamed["content"][-1]["text"] += " STREAMED-IN-PLACE"
    latest = upgraded.sql("SELECT max(time_updated) FROM session_message WHERE session_id = ?", hot)[0][0]
    now = max(int(time.time() * 1000), latest + 1)  # the newest write of the session
    upgraded.sql(
        "UPDATE session_message SET data = ?, time_updated = ? WHERE id = ?", json.dumps(streamed), now, mid
    )
    (cmid, cdata) = upgraded.sql(
        "SELECT id, data FROM session_message WHERE session_id = ? AND type = 'assistant' "
        "ORDER BY seq DESC LIMIT 1",
        cold,
    )[0]
    upgraded.sql(
        "UPDATE session_message SET data = ? WHERE id = ?",
        cdata.replace('"text":"', '"text":"OLD-SESSION ', 1),
        cmid,
    )
    upgraded.sql("UPDATE event_sequence SET seq = seq + 1 WHERE aggregate_id = ?", cold)  # the event's
    upgraded.cli("sync")
    files = upgraded.files()
    assert "STREAMED-IN-PLACE" in json.dumps(files[hot])
    assert "OLD-SESSION" in json.dumps(files[cold])


def test_a_session_2_0_deleted_is_kept_counted_listed_missing_and_restored_usable(
    upgraded: World, templates: Templates
) -> None:
    made = templates.upgraded
    native = made.native[2]  # a failed turn and a queued prompt: inbox seq above its last message
    imported = made.imported[0][0]
    upgraded.cli("sync")
    before = upgraded.files()
    rows_before = upgraded.sql(
        "SELECT id, seq, data FROM session_message WHERE session_id = ? ORDER BY seq", native
    )
    top = max(
        upgraded.sql("SELECT max(seq) FROM session_message WHERE session_id = ?", native)[0][0],
        upgraded.sql("SELECT max(enqueued_seq) FROM session_inbox WHERE session_id = ?", native)[0][0],
    )
    for sid in (native, imported):  # as 2.0 deletes: the session (cascading), its log and watermark
        upgraded.sql("DELETE FROM event_sequence WHERE aggregate_id = ?", sid)
        upgraded.sql("DELETE FROM session_v2 WHERE id = ?", sid)
    assert upgraded.sql("SELECT count(*) FROM session WHERE id = ?", imported) == [(1,)]  # its 1.x copy stays
    result = json.loads(upgraded.cli("sync", "--json").stdout)
    assert result["sessions_total"] == 5 and result["sessions_removed"] == 2
    for _ in range(2):  # and the stale 1.x rows never bring the imported one back
        assert sorted(upgraded.files()) == sorted(set(made.sessions) - {native, imported})
        upgraded.cli("sync")
    kept = list((upgraded.machine / "versions").glob(f"*/sessions/*/{native}.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == before[native]
    listed = {r["id"]: r for r in json.loads(upgraded.cli("list", "--json").stdout)}
    assert not listed[native]["in_opencode"] and not listed[imported]["in_opencode"]
    res = upgraded.cli("restore", "--missing", "--yes")
    assert f"restored {native}" in res.stdout and f"restored {imported}" in res.stdout
    assert (
        upgraded.sql("SELECT id, seq, data FROM session_message WHERE session_id = ? ORDER BY seq", native)
        == rows_before
    )
    watermark, owner = upgraded.sql(
        "SELECT seq, owner_id FROM event_sequence WHERE aggregate_id = ?", native
    )[0]
    assert watermark >= top and owner is None
    # the next turn 2.0 projects lands at watermark + 1: no clash with UNIQUE(session_id, seq)
    upgraded.sql(
        "INSERT INTO session_message (id, session_id, type, seq, time_created, time_updated, data) "
        "VALUES ('msg_next', ?, 'user', ?, 1, 1, '{}')",
        native,
        watermark + 1,
    )
    assert upgraded.sql("SELECT count(*) FROM session_v2 WHERE id = ?", imported) == [(1,)]
    assert upgraded.cli("sync").returncode == 0 and sorted(upgraded.files()) == sorted(made.sessions)


def test_most_2_0_sessions_vanishing_trips_the_guard(upgraded: World, templates: Templates) -> None:
    upgraded.cli("sync")
    upgraded.sql("DELETE FROM session_v2")
    res = upgraded.cli("sync", check=False)
    assert res.returncode == 1 and "lost 6 of the 7 sessions" in res.stderr + res.stdout
    assert len(upgraded.files()) == 7


def test_a_replace_never_lowers_the_watermark_and_clears_claims(
    upgraded: World, templates: Templates
) -> None:
    sid = templates.upgraded.native[0]
    upgraded.cli("sync")
    upgraded.sql(
        "UPDATE event_sequence SET seq = seq + 50, owner_id = 'dead-process' WHERE aggregate_id = ?", sid
    )
    upgraded.sql("UPDATE session_v2 SET time_suspended = 5, resume_attempts = 3 WHERE id = ?", sid)
    high = upgraded.sql("SELECT seq FROM event_sequence WHERE aggregate_id = ?", sid)[0][0]
    upgraded.cli("restore", sid, "--yes")
    assert upgraded.sql("SELECT seq, owner_id FROM event_sequence WHERE aggregate_id = ?", sid) == [
        (high, None)
    ]
    assert upgraded.sql("SELECT time_suspended, resume_attempts FROM session_v2 WHERE id = ?", sid) == [
        (None, 0)
    ]


def test_a_1x_backup_restored_into_a_fresh_2_0_is_converted_as_2_0_converts_it(
    templates: Templates, isolated_home: Path, tmp_path: Path
) -> None:
    """The lost laptop: backed up under 1.x, the new laptop runs 2.0. Every session appears in 2.0 with the
    rows 2.0's own importer would have written (compared with the upgraded database's)."""
    new = world_with(templates.v1, isolated_home, tmp_path)
    new.cli("sync")
    for suffix in ("", "-wal", "-shm"):  # the same HOME, now holding a fresh 2.0.26 install
        Path(f"{new.db}{suffix}").unlink(missing_ok=True)
    shutil.copy(templates.fresh.path, new.db)
    res = new.cli("restore", "--missing", "--yes")
    assert res.returncode == 0
    upgraded = sqlite3.connect(f"file:{templates.upgraded.path}?mode=ro", uri=True)
    for sid, count, watermark in templates.upgraded.imported:
        want = upgraded.execute(
            "SELECT id, type, seq, data FROM session_message WHERE session_id = ? ORDER BY seq", (sid,)
        ).fetchall()
        got = new.sql(
            "SELECT id, type, seq, data FROM session_message WHERE session_id = ? ORDER BY seq", sid
        )
        assert got == want and len(got) == count
        assert new.sql("SELECT seq FROM event_sequence WHERE aggregate_id = ?", sid) == [(watermark,)]
        assert new.sql("SELECT title FROM session_v2 WHERE id = ?", sid) == [(templates.titles[sid],)]
    late = templates.upgraded.late_v1[0]
    assert new.sql("SELECT count(*) FROM session_v2 WHERE id = ?", late) == [(1,)]
    new.cli("sync")  # and the next backup holds them as 2.0 sessions
    assert {d["store"] for d in new.files().values()} == {"v2"}


def test_a_2_0_backup_restored_into_a_1x_database_is_refused_and_nothing_written(
    upgraded: World, templates: Templates, tmp_path: Path
) -> None:
    upgraded.cli("sync")
    native = templates.upgraded.native[0]
    shutil.copy(templates.v1, upgraded.db)
    Path(f"{upgraded.db}-wal").unlink(missing_ok=True)
    Path(f"{upgraded.db}-shm").unlink(missing_ok=True)
    before = upgraded.db.read_bytes()
    res = upgraded.cli("restore", native, "--yes", check=False)
    assert res.returncode == 1
    assert "opencode 2.0" in res.stdout + res.stderr
    assert upgraded.db.read_bytes() == before


def test_a_full_replace_from_a_1x_snapshot_into_2_0_converts_every_session(
    templates: Templates, isolated_home: Path, tmp_path: Path
) -> None:
    w = world_with(templates.v1, isolated_home, tmp_path)
    w.cli("sync", "--snapshot")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{w.db}{suffix}").unlink(missing_ok=True)
    shutil.copy(templates.upgraded.path, w.db)  # the same HOME after the upgrade to 2.0
    kv = w.sql("SELECT key, value FROM kv ORDER BY key")
    res = w.cli("restore", "--all", "--replace", "--yes")
    assert "converted for opencode 2.0" in res.stdout
    upgraded = sqlite3.connect(f"file:{templates.upgraded.path}?mode=ro", uri=True)
    for sid in templates.titles:
        want = upgraded.execute(
            "SELECT id, seq, data FROM session_message WHERE session_id = ? ORDER BY seq", (sid,)
        ).fetchall()
        got = w.sql("SELECT id, seq, data FROM session_message WHERE session_id = ? ORDER BY seq", sid)
        assert got and (got == want or sid in templates.upgraded.late_v1)  # late: 2.0 never imported it
        assert w.sql("SELECT seq FROM event_sequence WHERE aggregate_id = ?", sid) == [(len(got) - 1,)]
    assert w.sql("SELECT key, value FROM kv ORDER BY key") == kv  # 2.0's own state is this machine's
    assert w.sql("SELECT count(*) FROM session_v2") == [(len(templates.titles),)]  # natives were not in it


def test_a_full_replace_from_a_2_0_snapshot_into_1x_is_refused(upgraded: World, templates: Templates) -> None:
    upgraded.cli("sync", "--snapshot")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{upgraded.db}{suffix}").unlink(missing_ok=True)
    shutil.copy(templates.v1, upgraded.db)
    before = upgraded.db.read_bytes()
    res = upgraded.cli("restore", "--all", "--replace", "--yes", check=False)
    assert res.returncode == 1 and "needs opencode 2.0 or newer" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert upgraded.db.read_bytes() == before


def test_no_secret_of_either_store_reaches_the_backup(upgraded: World, templates: Templates) -> None:
    """API keys and OAuth tokens in credential (an external Azure CLI one among them), account and
    control_account tokens, kv: in no byte of the backup, snapshots decompressed."""
    from app.opencode.snapshot import decompress

    assert upgraded.sql("SELECT count(*) FROM credential WHERE value LIKE '%\"external\"%'") == [(1,)]
    upgraded.cli("sync", "--snapshot")
    everything = b""
    for path in sorted(p for p in upgraded.backup.rglob("*") if p.is_file()):
        if path.name.endswith(".db.zst"):
            plain = path.parent.parent.parent / "plain.db"
            decompress(path, plain)
            everything += plain.read_bytes()
            snap = sqlite3.connect(plain)
            assert snap.execute("SELECT count(*) FROM credential").fetchone() == (0,)
            assert snap.execute("SELECT count(*) FROM kv").fetchone() == (0,)
            assert snap.execute("SELECT count(*) FROM session_v2").fetchone() == (6,)
            snap.close()
            plain.unlink()
        else:
            everything += path.read_bytes()
    for secret in (*make_v2.SECRETS, "tenant-TEST", "oc-TEST-ACCESS-SECRET-555-ctl"):
        assert secret.encode() not in everything, secret
    assert b"migration.v1-v2" not in everything  # kv: this machine's own state


def test_a_channel_database_of_opencode_2_is_backed_up_beside_the_main_one(
    templates: Templates, isolated_home: Path, tmp_path: Path
) -> None:
    """The beta's opencode-next.db, in the same data folder; and OPENCODE_DB naming one database."""
    w = world_with(templates.v1, isolated_home, tmp_path)
    shutil.copy(templates.fresh.path, w.data / "opencode-next.db")
    result = json.loads(w.cli("sync", "--json").stdout)
    assert result["sessions_total"] == len(templates.titles) + 3
    assert {d["database"] for d in w.files().values()} == {"opencode.db", "opencode-next.db"}


def test_a_full_replace_waits_for_opencode2_to_quit(upgraded: World, tmp_path: Path) -> None:
    """opencode 2.0's CLI is ``opencode2`` (the desktop app bundles its own); the check asks which process
    has the database files open, whatever its name, and names it."""
    upgraded.cli("sync", "--snapshot")
    binary = tmp_path / "opencode2"
    binary.symlink_to(sys.executable)
    holder = subprocess.Popen(
        [
            str(binary),
            "-c",
            f"import sqlite3, time; c = sqlite3.connect({str(upgraded.db)!r}); "
            "c.execute('SELECT 1 FROM session_v2').fetchall(); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        before = upgraded.db.read_bytes()
        res = upgraded.cli("restore", "--all", "--replace", "--yes", check=False)
        assert res.returncode == 1 and f"pid {holder.pid} (opencode2)" in res.stderr
        assert "quit opencode" in res.stderr and upgraded.db.read_bytes() == before
    finally:
        holder.kill()
        holder.communicate()


def test_repair_rebuilds_an_index_of_2_0_sessions_in_their_store(
    upgraded: World, templates: Templates
) -> None:
    upgraded.cli("sync")
    (upgraded.machine / "manifest.json").write_text("{ torn")
    assert upgraded.cli("sync", check=False).returncode == 1
    upgraded.cli("repair", "--yes")
    listed = json.loads(upgraded.cli("list", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(templates.upgraded.sessions)
    assert upgraded.cli("verify").returncode == 0
    from app.backup import manifest as mf

    stores = mf.load(upgraded.machine, "m1").stores()
    assert stores[templates.upgraded.native[0]] == "v2" and stores[templates.upgraded.late_v1[0]] == "v1"
    result = json.loads(upgraded.cli("sync", "--json").stdout)
    assert result["outcome"] == "ok" and result["sessions_removed"] == 0
