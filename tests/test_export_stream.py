"""A session file written as it is read holds the bytes ``json.dumps`` gives for the whole document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.opencode import sessions as s
from app.opencode.session_file import RowTextCache, json_default
from tests import dbfactory as f


def whole_document(reader: s.Reader, sid: str) -> bytes:
    """The session file as it was built before streaming: the closure in memory, one json.dumps."""
    info = reader.info(sid)
    assert info is not None
    doc: dict[str, Any] = {
        "format": s.SESSION_FORMAT,
        "session_id": info.id,
        "title": info.title,
        "project_id": info.project_id,
        "directory": info.directory,
        "time_updated": info.time_updated,
        "fingerprint": "fp",
        "database": reader.db.name,
        "opencode_schema": reader.schema_version,
        "store": "v1",
        "rows": reader.closure(sid),
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=json_default).encode()


def test_streamed_file_equals_the_whole_document_also_with_blobs_secrets_and_many_rows(
    tmp_path: Path,
) -> None:
    db = tmp_path / "opencode.db"
    conn = f.create_db(db)
    f.add_session(conn, "ses_big", messages=700)  # more keys than one IN (...) batch
    f.add_session(conn, "ses_b")
    f.plant_secrets(conn, "ses_b", tmp_path)
    conn.execute("UPDATE part SET data = ? WHERE session_id = 'ses_b'", ('{"text": "naïve ☃ \\n \\u0000"}',))
    conn.execute("UPDATE message SET data = ? WHERE session_id = 'ses_b'", (b"\x00\xffblob",))
    conn.close()
    with s.Reader(db) as reader:
        assert reader._streamable
        for sid in ("ses_big", "ses_b", "ses_missing"):
            info = reader.info(sid) or s.SessionInfo(sid, "", "", "", 0)
            want = whole_document(reader, sid) if sid != "ses_missing" else None
            got = reader.export(info, "fp")
            if want is not None:
                assert got == want, sid
            else:
                assert json.loads(got)["rows"] == {}
        assert b"SHARE-SECRET" not in reader.export(reader.info("ses_b"), "fp")  # type: ignore[arg-type]


def test_a_table_reached_by_two_foreign_keys_is_gathered_first_and_written_the_same(tmp_path: Path) -> None:
    db = tmp_path / "opencode.db"
    conn = f.create_db(db)
    f.add_session(conn, "ses_a")
    # a second path to part: part rows pointed at by a note, itself a child of the session
    conn.execute(
        "CREATE TABLE note (id text PRIMARY KEY, session_id text NOT NULL REFERENCES session(id), "
        "part_id text REFERENCES part(id))"
    )
    conn.execute("ALTER TABLE part ADD COLUMN note_id text REFERENCES note(id)")
    part = conn.execute("SELECT id FROM part WHERE session_id = 'ses_a' LIMIT 1").fetchone()[0]
    conn.execute("INSERT INTO note VALUES ('n1', 'ses_a', ?)", (part,))
    conn.execute("UPDATE part SET note_id = 'n1' WHERE id = ?", (part,))
    conn.close()
    with s.Reader(db) as reader:
        assert not reader._streamable["session"]
        info = reader.info("ses_a")
        assert info is not None
        assert reader.export(info, "fp") == whole_document(reader, "ses_a")


def test_a_session_exported_again_from_its_kept_row_texts_equals_a_fresh_export(tmp_path: Path) -> None:
    """The warm service keeps the row texts of the hot sessions it exported; through new, changed and
    deleted rows, a float where an integer was, a schema change and a session too big to keep, the next
    export is byte for byte the one a process with nothing kept writes."""
    db = tmp_path / "opencode.db"
    conn = f.create_db(db)
    f.add_session(conn, "ses_a", messages=40)
    f.add_session(conn, "ses_b")
    cache = s.ExportCache()  # what a sync context keeps between syncs

    def export_both(sid: str) -> tuple[bytes, bytes]:
        with s.Reader(db, cache) as reader, s.Reader(db, s.ExportCache()) as another_process:
            info = reader.info(sid)
            assert info is not None
            kept = reader.export(info, "fp", hot=True)
            fresh = another_process.export(info, "fp", hot=True)  # nothing kept there
            return kept, fresh

    def same(sid: str = "ses_a") -> None:
        kept, fresh = export_both(sid)
        assert kept == fresh

    same()  # first export: keeps the texts
    f.add_message(conn, "ses_a", "a new question")
    same()
    last_part = "SELECT max(rowid) FROM part WHERE session_id = 'ses_a'"
    conn.execute(f"UPDATE part SET data = ? WHERE rowid = ({last_part})", ('{"text": "rewritten ☃"}',))
    same()
    conn.execute(f"DELETE FROM part WHERE rowid = ({last_part})")
    same()
    conn.execute("ALTER TABLE message ADD COLUMN note")  # a new column (no type: keeps 1 and 1.0 apart)
    same()
    conn.execute("UPDATE message SET note = 1 WHERE session_id = 'ses_a'")
    same()
    conn.execute("UPDATE message SET note = 1.0 WHERE session_id = 'ses_a'")  # equal to 1, not its text
    kept, fresh = export_both("ses_a")
    assert kept == fresh and b'"note":1.0' in kept
    conn.execute("UPDATE message SET note = 'n' WHERE session_id = 'ses_a'")
    same()
    conn.execute("ALTER TABLE message RENAME COLUMN note TO remark")  # the same values under a new name
    kept, fresh = export_both("ses_a")
    assert kept == fresh and b'"remark":"n"' in kept
    cache = s.ExportCache(RowTextCache(2000))  # smaller than the session: nothing of it is kept
    conn.execute(f"UPDATE part SET data = '{{}}' WHERE rowid = ({last_part})")
    same()
    same("ses_b")
