"""A session file written as it is read holds the bytes ``json.dumps`` gives for the whole document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.opencode import sessions as s
from app.opencode.session_file import json_default
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
        assert not reader._streamable
        info = reader.info("ses_a")
        assert info is not None
        assert reader.export(info, "fp") == whole_document(reader, "ses_a")
