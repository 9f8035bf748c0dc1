"""The dialog protocol without a display: what the tray writes is what the dialog reads back, every field
that does not fit is refused in one line naming it (exit 2, before Tk is loaded), and the tray's side
never loads Tk."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from app.codec import CodecError
from app.ui.dialog import main
from app.ui.dialog.protocol import (
    REQUEST_TYPES,
    BadRequest,
    Browsed,
    BrowseRequest,
    Chosen,
    ConfirmRequest,
    Done,
    Exit,
    FolderRequest,
    Kind,
    MessageRequest,
    Picked,
    PickRequest,
    PickSession,
    RecoveryRequest,
    Request,
    StatusRequest,
    decode_answer,
    decode_request,
    encode,
    is_cancel,
)
from app.ui.dialogs import pick_session

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 29, 10, 15, tzinfo=UTC)
KEY = "AGE-SECRET-KEY-1" + "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L" + "QPZRY9X8GF2TVDW0S3JN54KHCE"  # 58 characters

REQUESTS: list[Request] = [
    ConfirmRequest(
        title="Replace everything", text="All of it?\n\nSure?", ok="Replace everything", strong=True
    ),
    ConfirmRequest(text="Add 3 sessions?"),
    MessageRequest(title="Restore failed", text="“ses_1” — disk full", error=True),
    PickRequest(
        sessions=(
            PickSession(id="ses_a", title="Fix the login bug", directory="/home/u/web", time_updated=NOW),
            PickSession(
                id="ses_b",
                title="",
                directory="C:\\Users\\ü\\api",
                time_updated=NOW.astimezone(timezone(timedelta(hours=-5))),
                in_opencode=False,
            ),
            PickSession(id="ses_c"),
        ),
        allow_replace=False,
    ),
    PickRequest(sessions=()),
    FolderRequest(title="Choose the backup folder", initial=Path("/home/u/Google Drive/backups")),
    FolderRequest(suggestions=(Path("G:/My Drive/opencode-sessions"), Path("/Volumes/Mi unidad/x"))),
    FolderRequest(remotes=("gdrive", "nas over sftp")),
    FolderRequest(),
    StatusRequest(state_dir=Path("/run/user/1000/state"), backup_path=Path("/srv/b  two spaces")),
    StatusRequest(state_dir=Path("/tmp/s"), backup_path=None, title="Status"),
    BrowseRequest(backup_path=Path("/g/My Drive/opencode-sessions"), machine="laptop", source=Path("/h/oc")),
    BrowseRequest(backup_path=Path("/b"), machine="m", source=Path("/s"), opencode_db=Path("/s/x.db")),
    RecoveryRequest(key=KEY, text="Store it now.\n\nIt is shown only once.", title="Encrypt", ok="Go"),
    RecoveryRequest(key=KEY, text=""),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_every_request_comes_back_as_it_was_sent(request_: Request) -> None:
    raw = encode(request_)
    assert b"\n" not in raw
    assert decode_request(request_.kind, raw) == request_


@pytest.mark.parametrize(
    "answer",
    [
        Done(ok=True),
        Picked(ids=("ses_b", "ses_a"), replace_all=False),
        Picked(ids=(), replace_all=True),
        Chosen(path=Path("/home/u/Ünïcode folder")),
        Browsed(
            session_id="ses_a",
            machine="old laptop",
            copy="versions/2026-11-30T101010.000Z/sessions/p/ses_a.json",
        ),
    ],
)
def test_every_answer_comes_back_as_it_was_sent(answer: Done | Picked | Chosen | Browsed) -> None:
    raw = encode(answer)
    assert b"\n" not in raw
    assert decode_answer(type(answer), raw) == answer


def test_each_kind_has_its_request_type_and_the_request_names_its_kind() -> None:
    assert set(REQUEST_TYPES) == set(Kind)
    for kind, request_type in REQUEST_TYPES.items():
        assert request_type.kind is kind
    assert [ConfirmRequest.answer, PickRequest.answer, FolderRequest.answer] == [Done, Picked, Chosen]
    assert RecoveryRequest.answer is Done


def test_a_catalog_row_becomes_what_the_picker_shows() -> None:
    from app.backup.catalog import SessionRow

    row = SessionRow("ses_a", "Fix it", "proj1", "/home/u/web", NOW, 1234, False, in_backup=False)
    sent = pick_session(row)
    assert sent == PickSession(
        id="ses_a", title="Fix it", directory="/home/u/web", time_updated=NOW, in_opencode=False, versions=1
    )
    assert pick_session(replace(row, versions=7)).versions == 7
    assert decode_request(Kind.PICK, encode(PickRequest(sessions=(sent,)))) == PickRequest(sessions=(sent,))


# ---------------------------------------------------------------- refused


VALID: dict[Kind, dict[str, Any]] = {
    Kind.CONFIRM: {"title": "t", "text": "x", "ok": "OK", "strong": False},
    Kind.MESSAGE: {"title": "t", "text": "x", "error": False},
    Kind.PICK: {
        "sessions": [
            {
                "id": "a",
                "title": "t",
                "directory": "/d",
                "time_updated": "2026-11-29T10:15:00Z",
                "in_opencode": True,
            }
        ],
        "allow_replace": True,
    },
    Kind.FOLDER: {"title": "t", "initial": "/home"},
    Kind.STATUS: {"state_dir": "/s", "backup_path": "/b", "title": "Status"},
    Kind.BROWSE: {"backup_path": "/b", "machine": "m", "source": "/s", "opencode_db": None, "title": "t"},
    Kind.RECOVERY: {"key": KEY, "text": "x", "title": "t", "ok": "Encrypt"},
}

# For each field of each request: a value of the wrong type, and what the one-line refusal names.
BAD_FIELDS: list[tuple[Kind, tuple[str | int, ...], object, str]] = [
    (Kind.CONFIRM, ("title",), None, "ConfirmRequest.title: expected str, got null"),
    (Kind.CONFIRM, ("text",), 3, "ConfirmRequest.text: expected str, got 3"),
    (Kind.CONFIRM, ("ok",), ["OK"], "ConfirmRequest.ok: expected str"),
    (Kind.CONFIRM, ("strong",), "true", "ConfirmRequest.strong: expected bool"),
    (Kind.CONFIRM, ("strong",), 1, "ConfirmRequest.strong: expected bool, got 1"),
    (Kind.MESSAGE, ("title",), 1.5, "MessageRequest.title: expected str"),
    (Kind.MESSAGE, ("text",), {"a": 1}, "MessageRequest.text: expected str"),
    (Kind.MESSAGE, ("error",), None, "MessageRequest.error: expected bool"),
    (Kind.PICK, ("sessions",), {}, "PickRequest.sessions: expected a list"),
    (Kind.PICK, ("allow_replace",), "no", "PickRequest.allow_replace: expected bool"),
    (Kind.PICK, ("sessions", 0), "ses_a", "PickRequest.sessions[0]: expected an object"),
    (Kind.PICK, ("sessions", 0, "id"), None, "PickRequest.sessions[0].id: expected str"),
    (Kind.PICK, ("sessions", 0, "title"), 7, "PickRequest.sessions[0].title: expected str"),
    (Kind.PICK, ("sessions", 0, "directory"), True, "PickRequest.sessions[0].directory: expected str"),
    (Kind.PICK, ("sessions", 0, "time_updated"), "yesterday", "sessions[0].time_updated: not a time"),
    (Kind.PICK, ("sessions", 0, "in_opencode"), "yes", "PickRequest.sessions[0].in_opencode: expected bool"),
    (Kind.PICK, ("sessions", 0, "versions"), "3", "PickRequest.sessions[0].versions: expected int"),
    (Kind.FOLDER, ("title",), False, "FolderRequest.title: expected str"),
    (Kind.FOLDER, ("initial",), 42, "FolderRequest.initial: expected Path"),
    (Kind.FOLDER, ("initial",), "/a\0b", "FolderRequest.initial: expected Path"),
    (Kind.FOLDER, ("suggestions",), "/g/My Drive", "FolderRequest.suggestions: expected a list"),
    (Kind.FOLDER, ("remotes",), "gdrive", "FolderRequest.remotes: expected a list"),
    (Kind.STATUS, ("state_dir",), None, "StatusRequest.state_dir: expected Path, got null"),
    (Kind.STATUS, ("backup_path",), 0, "StatusRequest.backup_path: expected Path"),
    (Kind.STATUS, ("title",), [], "StatusRequest.title: expected str"),
    (Kind.BROWSE, ("backup_path",), None, "BrowseRequest.backup_path: expected Path, got null"),
    (Kind.BROWSE, ("machine",), 3, "BrowseRequest.machine: expected str"),
    (Kind.BROWSE, ("source",), [], "BrowseRequest.source: expected Path"),
    (Kind.BROWSE, ("opencode_db",), 1, "BrowseRequest.opencode_db: expected Path"),
    (Kind.BROWSE, ("title",), False, "BrowseRequest.title: expected str"),
    (Kind.RECOVERY, ("key",), None, "RecoveryRequest.key: expected str"),
    (Kind.RECOVERY, ("key",), KEY.lower(), "RecoveryRequest.key: not an age secret key"),
    (Kind.RECOVERY, ("key",), KEY + "Q", "RecoveryRequest.key: not an age secret key"),
    (Kind.RECOVERY, ("key",), KEY + "\n", "RecoveryRequest.key: not an age secret key"),
    (Kind.RECOVERY, ("text",), 1, "RecoveryRequest.text: expected str"),
    (Kind.RECOVERY, ("title",), None, "RecoveryRequest.title: expected str"),
    (Kind.RECOVERY, ("ok",), False, "RecoveryRequest.ok: expected str"),
]


def _with(data: dict[str, Any], where: tuple[str | int, ...], value: object) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    target = copy
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    return copy  # type: ignore[no-any-return]


def test_the_valid_requests_are_valid() -> None:
    """The baseline each bad-field case below changes one field of."""
    for kind, data in VALID.items():
        decoded = decode_request(kind, json.dumps(data).encode())
        assert type(decoded) is REQUEST_TYPES[kind]


def test_every_request_field_is_covered_below() -> None:
    covered = {(kind, where[-1]) for kind, where, _v, _s in BAD_FIELDS if isinstance(where[-1], str)}
    for kind, request_type in REQUEST_TYPES.items():
        for f in fields(request_type):
            assert (kind, f.name) in covered, f"{kind}.{f.name} has no bad-field case"
    for f in fields(PickSession):
        assert (Kind.PICK, f.name) in covered, f"PickSession.{f.name} has no bad-field case"


@pytest.mark.parametrize(("kind", "where", "value", "says"), BAD_FIELDS)
def test_a_field_of_the_wrong_type_is_a_bad_request(
    kind: Kind, where: tuple[str | int, ...], value: object, says: str
) -> None:
    raw = json.dumps(_with(VALID[kind], where, value)).encode()
    with pytest.raises(BadRequest) as caught:
        decode_request(kind, raw)
    text = str(caught.value)
    assert text.startswith(f"bad {kind} request: ") and says in text, text
    assert len(text.splitlines()) == 1


@pytest.mark.parametrize(
    ("kind", "data", "says"),
    [
        (Kind.CONFIRM, {"title": "t"}, "ConfirmRequest: text is missing"),
        (Kind.MESSAGE, {}, "MessageRequest: text is missing"),
        (Kind.PICK, {"allow_replace": True}, "PickRequest: sessions is missing"),
        (Kind.PICK, {"sessions": [{"title": "no id"}]}, "PickRequest.sessions[0]: id is missing"),
        (Kind.PICK, {"sessions": [{"id": "a"}, {"id": "b"}, {"id": "a"}]}, "sessions[2]: duplicate id 'a'"),
        (Kind.STATUS, {"backup_path": None}, "StatusRequest: state_dir is missing"),
        (Kind.RECOVERY, {"text": "x"}, "RecoveryRequest: key is missing"),
        (Kind.RECOVERY, {"key": KEY}, "RecoveryRequest: text is missing"),
    ],
)
def test_a_missing_field_or_a_duplicate_session_is_a_bad_request(
    kind: Kind, data: dict[str, Any], says: str
) -> None:
    with pytest.raises(BadRequest, match=f"^bad {kind} request: .*{re.escape(says)}"):
        decode_request(kind, json.dumps(data).encode())


def test_what_is_not_json_or_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match=r"^the confirm request is not valid JSON: "):
        decode_request(Kind.CONFIRM, b"{not json")
    with pytest.raises(BadRequest, match=r"^the pick request is not valid JSON: "):
        decode_request(Kind.PICK, b"\xff\xfe")
    with pytest.raises(BadRequest, match=r"^the folder request must be a JSON object$"):
        decode_request(Kind.FOLDER, b'["/home"]')


def test_unknown_fields_are_ignored_and_missing_ones_take_their_defaults() -> None:
    raw = b'{"text": "hi", "colour": "red"}'
    assert decode_request(Kind.CONFIRM, raw) == ConfirmRequest(
        text="hi", title="Confirm", ok="OK", strong=False
    )
    assert decode_request(Kind.FOLDER, b"{}") == FolderRequest(title="Choose a folder", initial=None)


def test_the_client_cannot_build_a_picker_with_one_session_twice() -> None:
    with pytest.raises(CodecError, match="duplicate id 'a'"):
        PickRequest(sessions=(PickSession(id="a"), PickSession(id="a")))


def test_only_the_exact_cancel_answer_is_a_cancel() -> None:
    assert is_cancel(b'{"cancelled": true}\n')
    for raw in (b"{}", b'{"cancelled": false}', b'{"cancelled": 1}', b"", b"Traceback ..."):
        assert not is_cancel(raw), raw


def test_an_answer_missing_a_field_is_no_answer() -> None:
    """An empty or cut-off answer must never confirm anything: every answer field is required."""
    for answer_type, raw in ((Done, b"{}"), (Picked, b'{"ids": []}'), (Chosen, b"{}")):
        with pytest.raises(CodecError, match="is missing"):
            decode_answer(answer_type, raw)


# ---------------------------------------------------------------- the process, before any window


def _run_main(argv: list[str], stdin: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    real = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code = main(argv)
    finally:
        sys.stdin = real
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [["nope"], [], ["confirm", "extra"], ["CONFIRM"]])
def test_an_unknown_kind_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_main(argv, b"{}", capsys)
    assert (code, out) == (Exit.BAD_REQUEST, "")
    kinds = "confirm|pick|folder|message|status|browse|recovery"
    assert err == f"dialog: usage: python -m app.ui.dialog {{{kinds}}} < request.json\n"


def test_a_bad_request_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_main(["pick"], b'{"sessions": [{"id": "a\\u2028b"}, {"id": "a\\u2028b"}]}', capsys)
    assert (code, out) == (Exit.BAD_REQUEST, "")
    assert err.startswith("dialog: bad pick request: PickRequest.sessions[1]: duplicate id")
    assert len(err.splitlines()) == 1 and err.endswith("\n")  # even with a line separator in the id


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_the_tray_side_and_a_refused_request_never_load_tk() -> None:
    client = _python("import sys, app.ui.dialogs, app.ui.dialog; print('tkinter' in sys.modules)")
    assert client.stdout.strip() == "False", client.stderr
    refused = _python(
        "import io, sys\n"
        "from app.ui.dialog import main\n"
        "sys.stdin = io.TextIOWrapper(io.BytesIO(b'{}'))\n"
        "code = main(['confirm'])\n"
        "print(code, 'tkinter' in sys.modules)"
    )
    assert refused.stdout.strip() == "2 False", refused.stderr
    shown = _python("import sys\nfrom app.ui.dialog import windows\nprint('tkinter' in sys.modules)")
    assert shown.stdout.strip() == "True", shown.stderr  # the check above can tell


def test_the_folder_typed_on_a_remote_keeps_its_leading_slash() -> None:
    """An absolute path on an sftp server ('/srv/backups') stays absolute; a trailing '/' goes; nothing
    typed is the default folder."""
    folder = pytest.importorskip("app.ui.dialog.folder")  # Tk: the dialog process's side
    assert folder.remote_choice("nas", " /srv/backups/ ") == "rclone:nas:/srv/backups"
    assert folder.remote_choice("nas", "backups/opencode/") == "rclone:nas:backups/opencode"
    assert folder.remote_choice("nas", "  ") == f"rclone:nas:{folder.DEFAULT_REMOTE_FOLDER}"
