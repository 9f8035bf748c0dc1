"""Text from the backup folder or opencode's database reaches people inert: on the terminal (``list``,
``verify``, errors, ``--json``, the log), in a notification, the tray's tooltip, a dialog, the agent
tools. A title that retitles and clears the terminal, C1 controls, a bidi override and invisible tag
characters are shown escaped; a 20,000-character title is cut.
"""

from __future__ import annotations

import json
import logging
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.backup import manifest as mf
from app.backup.catalog import SessionRow
from app.backup.sync import run_sync
from app.errors import FailureKind
from app.mcp.calls import ToolResult
from app.safe_text import clean, clean_json, clean_lines, log_formatter
from app.service.retry import FailingSince
from app.service.status import ServiceState, Status
from app.ui import presenter
from app.ui.dialogs import pick_session
from app.ui.icons import State
from app.ui.notify import DesktopNotifier, Note, episode_note
from tests import dbfactory as f
from tests.backups import run_cli, sync_context

MACHINE = "box"
PWN = "\x1b]0;pwned\x07\x1b[2J\x1b[31mRED"  # retitles the terminal, clears it, turns it red
SNEAKY = "evil\u202etxt.exe\x9b2J\U000e0041\u2028"  # bidi override, C1 CSI, a tag character, a separator
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\U000e0041", "\u2028")


def no_raw(text: str) -> None:
    found = [c for c in RAW if c in text]
    assert not found, (found, text[:300])


@pytest.fixture
def backup(tmp_path: Path) -> dict[str, Path]:
    data = tmp_path / "opencode"
    conn = f.create_db(data / "opencode.db")
    f.add_session(conn, "ses_a")
    f.add_session(conn, "ses_b")
    conn.close()
    assert run_sync(sync_context(tmp_path / "backup", MACHINE, data)).ok
    machine = tmp_path / "backup" / MACHINE
    man = mf.load(machine, MACHINE)
    # what a hostile peer (or a damaged cloud copy) can commit: valid JSON, valid hashes, hostile words
    for sid, title in (("ses_a", PWN), ("ses_b", SNEAKY + "x" * 20_000)):
        man.sessions[sid] = mf.SessionEntry(**{**vars(man.sessions[sid]), "title": title[:20_000]})
    man.sessions["ses_a"] = mf.SessionEntry(**{**vars(man.sessions["ses_a"]), "directory": SNEAKY})
    mf.save(machine, man)
    return {"data": data, "dest": tmp_path / "backup", "machine": machine}


def cli(b: dict[str, Path], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(b["dest"], MACHINE, b["data"], *args)


def test_list_shows_a_hostile_title_escaped_and_cut_and_json_keeps_it_exactly(
    backup: dict[str, Path],
) -> None:
    done = cli(backup, "list")
    assert done.returncode == 0, done.stderr
    no_raw(done.stdout)
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mRED" in done.stdout
    assert "evil\\u202etxt.exe\\x9b2J" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) < 600  # not 20,000 characters
    as_json = cli(backup, "list", "--json")
    no_raw(as_json.stdout)
    titles = {row["id"]: row["title"] for row in json.loads(as_json.stdout)}
    assert titles["ses_a"] == PWN  # the same document for a program that reads it


def test_an_error_and_a_verify_problem_quoting_a_hostile_file_name_are_inert(backup: dict[str, Path]) -> None:
    machine = backup["machine"]
    man = mf.load(machine, MACHINE)
    rel = "storage/" + SNEAKY.replace("\u2028", "")  # passes the path checks: no C0 control, no slash
    mf.save(machine, man, {mf.shard_of(rel): {rel: mf.FileEntry(1, "0" * 64)}})
    done = cli(backup, "verify")
    assert done.returncode == 1 and "missing" in done.stdout, done.stdout
    no_raw(done.stdout + done.stderr)
    assert "\\u202e" in done.stdout


def test_the_tray_the_notifications_the_dialogs_and_the_agent_tools_show_it_inert() -> None:
    now = datetime.now(UTC)
    tip = presenter.tooltip(None, True, False, now, problem=f"backupPath {PWN} is a file")
    no_raw(tip)
    status = Status(state=ServiceState.FAILED, last_error=f"cannot read {SNEAKY}")
    for row in presenter.status_rows(status, now, f"/b/{PWN}"):
        no_raw(row.value)
    sent: list[tuple[str, str]] = []
    notifier = DesktopNotifier([lambda t, b, _i: sent.append((t, b))], lambda _s: "")
    notifier.start()
    notifier.episode(FailingSince(now, FailureKind.FATAL, f"refusing {PWN}", 2))
    notifier.notify(Note(f"title {SNEAKY}", "body\n" + PWN, State.FAILED))
    notifier.stop()
    assert len(sent) == 2
    for title, body in sent:
        no_raw(title + body)
    assert episode_note(FailingSince(now, FailureKind.FATAL, "x", 2)).body == "x"
    row = SessionRow("ses_a", PWN, "p", SNEAKY, now, 1, True, True)
    shown = pick_session(row)
    no_raw(shown.title + shown.directory)
    answer = ToolResult(f"Restore plan:\n  add ses_a {PWN!s}").to_json()
    no_raw(answer["content"][0]["text"])


def test_a_log_line_quoting_a_hostile_name_is_inert() -> None:
    record = logging.LogRecord("app.x", logging.WARNING, __file__, 1, "taking over %s", (PWN,), None)
    no_raw(log_formatter().format(record))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain title", "plain title"),
        (
            "é 漢字 👨\u200d👩\u200d👧 café",
            "é 漢字 👨\u200d👩\u200d👧 café",
        ),  # joiners kept: inert, part of emoji
        ("a\nb\tc\x7f", "a\\nb\\tc\\x7f"),
        ("\u202eabc\u2066", "\\u202eabc\\u2066"),
        ("lone \udcff byte", "lone \\udcff byte"),  # a file name that was not UTF-8: printable now
    ],
)
def test_clean_escapes_exactly_the_unsafe_characters(text: str, shown: str) -> None:
    assert clean(text) == shown
    line = text.replace("\n", " ")
    assert clean_lines(f"{line}\n{line}") == "\n".join([clean(line)] * 2)


def test_clean_caps_the_length_and_json_stays_the_same_document() -> None:
    assert len(clean("x" * 10_000)) == 200 and clean("x" * 10_000).endswith("…")
    assert len(clean("\x1b" * 10_000, 50)) == 50
    doc = {"title": PWN + SNEAKY + "\udcff"[:0], "n": [1, 2]}
    text = clean_json(json.dumps(doc, ensure_ascii=False, indent=2))
    no_raw(text)
    assert json.loads(text) == doc
