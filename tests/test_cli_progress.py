"""Progress on the command line: a bar on a terminal, a line now and then in a log, nothing with --json,
never on stdout (where a script reads the result)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from app.__main__ import main
from app.backup.progress import Progress, Step
from app.cli import progress as cp
from tests import dbfactory as f


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_a_line_only_for_work_that_lasts_and_at_most_every_ten_seconds() -> None:
    now = [0.0]
    out = io.StringIO()
    lines = cp.PlainLines(out, clock=lambda: now[0])
    lines(Progress(Step.SESSIONS, 1, 1800, 0.0))  # the first second: a short sync says nothing
    now[0] = 0.9
    lines(Progress(Step.SESSIONS, 90, 1800, 0.9))
    assert out.getvalue() == ""
    now[0] = 2.0
    lines(Progress(Step.SESSIONS, 200, 1800, 2.0))
    now[0] = 9.0
    lines(Progress(Step.SESSIONS, 900, 1800, 9.0))  # too soon after the last line
    now[0] = 12.5
    lines(Progress(Step.COPYING, 10, 40, 0.5))
    assert out.getvalue().splitlines() == [
        "backing up sessions: 200 of 1,800, about 16 s left",
        "copying to the backup folder: 10 of 40",
    ]


def test_a_terminal_gets_a_bar_per_step_that_says_what_it_does_and_clears_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "COLUMNS", "120"
    )  # room for the whole line (a near-zero elapsed time makes a wide rate)
    out = Terminal()
    bars = cp.Bars(out, delay=0)
    bars(Progress(Step.SESSIONS, 0, 1800))
    bars(Progress(Step.SESSIONS, 640, 1800, nbytes=310 << 20))
    shown = out.getvalue()
    assert "backing up sessions" in shown and "640/1800" in shown and "sessions/s" in shown
    assert "310.0 MiB" in shown  # the bytes written so far
    bars(Progress(Step.SNAPSHOT, 0, None))  # a new step: the old bar goes, a new one is drawn
    bars.close()
    last_screen = out.getvalue().rsplit("\r", 1)[-1]
    assert "backing up sessions" not in last_screen and "640/1800" not in last_screen
    assert "taking a database snapshot" in out.getvalue()


def test_a_short_step_on_a_terminal_draws_nothing() -> None:
    out = Terminal()
    bars = cp.Bars(out)  # the real delay: a step done within a second is never drawn
    bars(Progress(Step.COPYING, 0, 3))
    bars(Progress(Step.COPYING, 3, 3))
    bars.close()
    assert out.getvalue().strip() == ""


@pytest.fixture
def world(tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    data = isolated_home / ".local/share/opencode"
    conn = f.create_db(data / "opencode.db")
    for i in range(30):
        f.add_session(conn, f"ses_{i:02d}")
    conn.close()
    monkeypatch.setattr(cp, "SHOW_AFTER", 0.0)  # show every report, however quick the work here is
    monkeypatch.setattr(cp, "PLAIN_EVERY", 0.0)
    return {"data": data, "dest": tmp_path / "backup"}


def cli(capsys: pytest.CaptureFixture[str], world: dict[str, Path], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*argv, "--backup-path", str(world["dest"]), "--machine-name", "laptop"])
    out, err = capsys.readouterr()
    return rc, out, err


def test_sync_restore_and_verify_report_progress_on_stderr_and_keep_stdout_for_the_result(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path]
) -> None:
    rc, out, err = cli(capsys, world, "sync")
    assert rc == 0 and out.startswith("ok:") and len(out.splitlines()) == 1
    assert re.search(r"backing up sessions: 30 of 30, \d+\.\d KiB", err)  # and the bytes exported
    assert re.search(r"copying to the backup folder: \d+ of \d+", err)

    rc, out, err = cli(capsys, world, "verify")
    assert rc == 0 and out.splitlines()[-1].startswith("OK:")
    assert re.search(r"checking the backup: (\d+) of \1, \d+\.\d KiB", err)

    for i in range(30):
        f.delete_session(world["data"] / "opencode.db", f"ses_{i:02d}")
    rc, out, err = cli(capsys, world, "restore", "--missing", "--yes")
    assert rc == 0 and "30 session(s) restored" in out
    assert re.search(r"restoring sessions: 30 of 30, \d+\.\d KiB", err)


def test_with_json_stderr_stays_silent_and_stdout_is_only_json(
    capsys: pytest.CaptureFixture[str], world: dict[str, Path]
) -> None:
    rc, out, err = cli(capsys, world, "sync", "--json")
    assert rc == 0 and err == ""
    assert json.loads(out)["outcome"] == "ok"
