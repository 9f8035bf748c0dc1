"""The command line as a user meets it: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests import dbfactory as f


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        check=False,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def snapshot_tree(root: Path) -> list[tuple[str, int]]:
    return sorted(
        (str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1) for p in root.rglob("*")
    )


@pytest.fixture
def world(tmp_path: Path, isolated_home: Path) -> dict[str, Path]:
    data = isolated_home / ".local/share/opencode"
    conn = f.create_db(data / "opencode.db")
    f.add_session(conn, "ses_cli_1")
    conn.close()
    (isolated_home / ".config/opencode").mkdir(parents=True)
    (tmp_path / "a-file").write_text("not a folder")
    return {
        "home": isolated_home,
        "data": data,
        "cfg": isolated_home / ".config/opencode/session-backup.json",
        "tmp": tmp_path,
    }


BAD = [
    ("relative path", ["--backup-path", "relative/dir"], None, "backupPath"),
    ("inside the data dir", ["--backup-path", "{data}/backups"], None, "inside"),
    ("data dir inside destination", ["--backup-path", "{home}/.local"], None, "contains opencode"),
    ("destination is a file", ["--backup-path", "{tmp}/a-file"], None, "not a folder"),
    ("parent missing", ["--backup-path", "{tmp}/no/such/parent"], None, "does not exist"),
    ("unparseable file", [], '{"backupPath": "/tmp/x",\n  "debug": tru\n}', "line 2"),
    ("wrong type", [], '{"syncDelaySeconds": "abc"}', "syncDelaySeconds"),
    ("negative interval", [], '{"minIntervalSeconds": -5}', "minIntervalSeconds"),
    ("unknown engine", ["--backup-path", "{tmp}/b"], '{"engine": "ftp"}', "engine"),
    ("bad debug env", ["--backup-path", "{tmp}/b"], None, "OPENCODE_BACKUP_DEBUG"),
]


@pytest.mark.parametrize(("case", "flags", "file_text", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_configuration_exits_2_with_one_line_and_writes_nothing(
    world: dict[str, Path], case: str, flags: list[str], file_text: str | None, needle: str
) -> None:
    if file_text is not None:
        world["cfg"].write_text(file_text)
    env = {"OPENCODE_BACKUP_DEBUG": "maybe"} if case == "bad debug env" else {}
    before = snapshot_tree(world["tmp"])
    args = [a.format(**{k: str(v) for k, v in world.items()}) for a in flags]
    proc = run_cli("sync", *args, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert proc.stdout == ""
    assert snapshot_tree(world["tmp"]) == before


@pytest.mark.parametrize(
    "case", ["inside the data dir", "data dir inside destination", "destination is a file"]
)
def test_config_and_status_name_the_problem_sync_refuses_with_in_the_same_words(
    world: dict[str, Path], case: str
) -> None:
    """A backup folder that cannot be used: ``sync`` refuses it in one line (exit 2); ``config`` shows the
    settings and the same line (exit 2, as for every other wrong setting); ``status`` says it too, never
    "not mounted"."""
    flags = next(f for c, f, _t, _n in BAD if c == case)
    args = [a.format(**{k: str(v) for k, v in world.items()}) for a in flags]
    refused = run_cli("sync", *args).stderr.strip().removeprefix("opencode-backup: ")
    shown = run_cli("config", *args)
    assert shown.returncode == 2 and shown.stdout.strip().splitlines()[-1] == f"error: {refused}"
    assert json.loads(run_cli("config", "--json", *args).stdout)["backupPathProblem"] == refused
    status = run_cli("status", *args)
    assert status.returncode == 0 and f"cannot be used: {refused}" in status.stdout
    assert "not mounted" not in status.stdout
    assert json.loads(run_cli("status", "--json", *args).stdout)["backup_problem"] == refused


def test_unknown_command_and_flag_are_usage_errors(world: dict[str, Path]) -> None:
    for args in (["frobnicate"], ["sync", "--no-such-flag"]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_not_configured_says_how_to_set_it(world: dict[str, Path]) -> None:
    proc = run_cli("sync")
    assert proc.returncode == 2
    assert "OPENCODE_BACKUP_PATH" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_sync_status_list_verify_round_trip(world: dict[str, Path]) -> None:
    dest = str(world["tmp"] / "backup")
    env = {"OPENCODE_BACKUP_PATH": dest}
    proc = run_cli("sync", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["outcome"] == "ok" and result["sessions_exported"] == 1
    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert status["sessions_backed_up"] == 1 and status["last_result"] == "ok"
    assert status["backup_bytes"] > 0 and status["last_backup"] == status["last_attempt"] is not None
    listed = json.loads(run_cli("list", "--json", env=env).stdout)
    assert [(r["id"], r["in_opencode"]) for r in listed] == [("ses_cli_1", True)]
    assert run_cli("verify", env=env).returncode == 0
    config = json.loads(run_cli("config", "--json", env=env).stdout)
    assert (
        config["settings"]["backupPath"] == dest and "OPENCODE_BACKUP_PATH" in config["origins"]["backupPath"]
    )


def test_list_still_shows_a_session_deleted_in_opencode_after_the_deletion_was_backed_up(
    world: dict[str, Path],
) -> None:
    """The usual accident: a session deleted, the service syncs the deletion, the user looks for it."""
    env = {"OPENCODE_BACKUP_PATH": str(world["tmp"] / "backup")}
    conn = f.connect(world["data"] / "opencode.db")
    f.add_session(conn, "ses_cli_2", title="the one I deleted")
    conn.close()
    assert run_cli("sync", env=env).returncode == 0
    f.delete_session(world["data"] / "opencode.db", "ses_cli_2")
    assert run_cli("sync", env=env).returncode == 0
    listed = {r["id"]: r for r in json.loads(run_cli("list", "--json", env=env).stdout)}
    gone = listed["ses_cli_2"]
    assert gone["title"] == "the one I deleted" and not gone["in_opencode"] and not gone["in_backup"]
    assert gone["directory"] == "/home/u/code/proj1"
    assert listed["ses_cli_1"]["in_backup"] and listed["ses_cli_1"]["in_opencode"]
    assert "[deleted; last copy in versions/]" in run_cli("list", env=env).stdout


def test_status_says_the_backup_folder_is_unreachable_instead_of_zero_sessions(
    world: dict[str, Path],
) -> None:
    dest = world["tmp"] / "drive" / "backup"
    env = {"OPENCODE_BACKUP_PATH": str(dest)}
    (world["tmp"] / "drive").mkdir()
    assert run_cli("sync", env=env).returncode == 0
    (dest.parent).rename(world["tmp"] / "unplugged")
    (world["tmp"] / "drive").mkdir()  # the mount point is back, the drive is not
    data = json.loads(run_cli("status", "--json", env=env).stdout)
    assert data["backup_reachable"] is False and data["sessions_backed_up"] is None
    text = run_cli("status", env=env).stdout
    first = text.splitlines()[0]
    assert first.split(maxsplit=2)[2].startswith(f"{dest}/") and first.endswith(
        "(not reachable: not mounted, or not created yet)"
    )
    assert "sessions backed up" not in text


def test_verify_fails_with_what_is_wrong(world: dict[str, Path]) -> None:
    dest = world["tmp"] / "backup"
    env = {"OPENCODE_BACKUP_PATH": str(dest)}
    assert run_cli("sync", env=env).returncode == 0
    victim = next(dest.rglob("ses_cli_1.json"))
    victim.write_text("{")
    proc = run_cli("verify", env=env)
    assert proc.returncode == 1 and "ses_cli_1.json" in proc.stdout


def test_help_lists_commands_in_the_order_a_user_needs_them_each_with_a_line_and_ends_with_exit_codes(
    world: dict[str, Path],
) -> None:
    out = run_cli("--help").stdout
    listed = re.findall(r"^    (\S+)\s+(\S.*)$", out.split("commands:")[1].split("exit codes:")[0], re.M)
    names = [name for name, _ in listed]
    assert names[:9] == ["run", "sync", "status", "list", "search", "show", "history", "restore", "verify"]
    assert {"config", "pause", "resume", "sync-now", "autostart"} <= set(names)
    assert all(len(line) > 15 for _, line in listed), listed  # every command says what it does
    assert out.rstrip().splitlines()[-3].strip().startswith("0") and "exit codes:" in out
    for name in names:
        sub = run_cli(name, "--help")
        assert sub.returncode == 0 and len(sub.stdout.split("\n\n")[1]) > 20, (name, sub.stdout)


def test_settings_flags_work_before_the_command_and_are_refused_where_they_mean_nothing(
    world: dict[str, Path],
) -> None:
    dest = world["tmp"] / "backup"
    assert run_cli("--backup-path", str(dest), "sync").returncode == 0
    before = run_cli("--backup-path", str(dest), "status", "--json")
    assert before.returncode == 0 and json.loads(before.stdout)["sessions_backed_up"] == 1
    for args in (["pause", "--engine", "rsync"], ["--engine", "rsync", "pause"], ["status", "--engine", "x"]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
    assert "--engine does not apply to 'pause'" in run_cli("--engine", "rsync", "pause").stderr


def test_status_is_aligned_and_worded_like_config_and_tells_a_failed_attempt_from_a_backup(
    world: dict[str, Path],
) -> None:
    env = {"OPENCODE_BACKUP_PATH": str(world["tmp"] / "backup")}
    (world["data"] / "opencode.db").write_bytes(b"not a database at all, but a file of that name" * 100)
    assert run_cli("sync", env=env).returncode == 1
    data = json.loads(run_cli("status", "--json", env=env).stdout)
    assert data["last_backup"] is None and data["last_attempt"] and data["last_result"] == "failed"
    text = run_cli("status", env=env).stdout
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in text.splitlines())
    assert rows["last backup"] == "none yet" and rows["last attempt"].endswith(": failed")
    assert "cannot read opencode's database" in rows["last error"]
    assert "True" not in text and "_" not in "".join(rows)  # words, not field names
    starts = {line.index(value) for line, value in zip(text.splitlines(), rows.values(), strict=True)}
    assert len(starts) == 1  # one column


def test_a_new_install_before_opencode_ran_has_nothing_to_back_up_and_that_is_not_a_failure(
    world: dict[str, Path],
) -> None:
    for name in ("opencode.db", "opencode.db-wal", "opencode.db-shm"):
        (world["data"] / name).unlink(missing_ok=True)
    world["data"].rmdir()
    proc = run_cli("sync", env={"OPENCODE_BACKUP_PATH": str(world["tmp"] / "backup")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nothing to back up yet: opencode has not saved anything in ")
    assert str(world["data"]) in proc.stdout and proc.stderr == ""


def test_an_unknown_session_and_an_ambiguous_prefix_are_both_usage_errors(world: dict[str, Path]) -> None:
    env = {"OPENCODE_BACKUP_PATH": str(world["tmp"] / "backup")}
    conn = f.connect(world["data"] / "opencode.db")
    f.add_session(conn, "ses_cli_2")
    conn.close()
    assert run_cli("sync", env=env).returncode == 0
    nothing = run_cli("restore", "ses_zzz", "--yes", env=env)
    both = run_cli("restore", "ses_cli_", "--yes", env=env)
    assert nothing.returncode == both.returncode == 2, (nothing.stderr, both.stderr)
    assert "no backed-up session matches" in nothing.stderr and "matches 2 sessions" in both.stderr


def test_an_error_with_a_newline_in_a_path_is_still_one_line(world: dict[str, Path]) -> None:
    proc = run_cli("sync", "--backup-path", str(world["tmp"] / "two\nlines" / "x"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "two\\nlines" in proc.stderr
