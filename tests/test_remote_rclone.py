"""rclone as the way to a remote: the backup path's spelling, the commands (a list argv, never a shell), what
rclone's JSON log says and what a user reads for each of its failures: recorded lines for the services this
machine cannot reach (Google Drive, S3, B2), the real rclone against its own servers for the rest."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from app.errors import FailureKind
from app.platform import process
from app.transfer import rclone
from app.transfer.rclone import RcloneFailed, RemoteSpec, parse_spec
from app.transfer.rclone_log import Said, parse_line, problem, read_log
from tests.remotes import Servers, remote_for, use_config


@pytest.mark.parametrize(
    ("text", "remote", "path"),
    [
        ("rclone:gdrive:opencode-sessions", "gdrive", "opencode-sessions"),
        ("rclone:nas:/srv/backups/opencode/", "nas", "/srv/backups/opencode"),
        ("rclone:my remote.2:a//b/./c", "my remote.2", "a/b/c"),
        ("rclone:b2:", "b2", ""),
    ],
)
def test_a_remote_is_written_rclone_remote_path(text: str, remote: str, path: str) -> None:
    spec = parse_spec(text)
    assert (spec.remote, spec.path) == (remote, path)
    assert spec.at("laptop", "manifest.json") == f"{remote}:{path + '/' if path else ''}laptop/manifest.json"


@pytest.mark.parametrize(
    "text",
    [
        "rclone:gdrive",  # no colon after the remote
        "rclone::sftp,host=evil:x",  # a connection string: settings (maybe secrets) on a command line
        "rclone:remote,param=1:x",
        "rclone:-flag:x",  # would read as an option
        "rclone:gdrive:a/../b",
        "rclone:gdrive:a\nb",
        "rclone: spaced :x",
    ],
)
def test_what_is_not_a_remote_is_refused_with_its_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_spec(text)


def test_each_command_is_a_list_with_the_file_list_on_stdin() -> None:
    opts = rclone.Options(bwlimit="1M")
    argv = rclone.upload_argv("rclone", Path("/tmp/out"), "gdrive:p", opts, files=3)
    assert argv[:4] == ["rclone", "copy", "/tmp/out", "gdrive:p"]
    for flag in ("--files-from-raw", "--no-traverse", "--use-json-log"):
        assert flag in argv
    assert argv[argv.index("--files-from-raw") + 1] == "-"
    assert argv[argv.index("--bwlimit") + 1] == "1M"
    assert "--ignore-times" not in argv and "--checksum" not in argv
    assert "--ignore-times" in rclone.upload_argv("rclone", Path("/o"), "g:p", opts, files=3, force=True)
    assert "--no-traverse" not in rclone.upload_argv("rclone", Path("/o"), "g:p", opts, files=5000)
    assert rclone.moveto_argv("rclone", "r:a", "r:b", rclone.Options())[:4] == [
        "rclone",
        "moveto",
        "r:a",
        "r:b",
    ]
    assert "--bwlimit" not in rclone.delete_argv("rclone", "r:p", rclone.Options())


def test_the_json_log_says_what_was_done_and_its_progress() -> None:
    log = "\n".join(
        [
            '{"level":"info","msg":"Copied (new)","object":"laptop/a.json","time":"t"}',
            '{"level":"info","msg":"Copied (replaced existing)","object":"laptop/b.json","time":"t"}',
            '{"level":"info","msg":"Moved (server-side)","object":"sessions/x.json","time":"t"}',
            '{"level":"info","msg":"Deleted","object":"old.json","time":"t"}',
            '{"level":"info","msg":"\\nTransferred: ...","stats":{"bytes":10,"totalBytes":20,"transfers":1,'
            '"totalTransfers":2,"eta":3}}',
            '{"level":"error","msg":"Attempt 1/1 failed with 1 errors and: boom"}',
            "not json at all",
        ]
    )
    said = read_log(log)
    assert said.copied == {"laptop/a.json", "laptop/b.json"}
    assert said.moved == {"sessions/x.json"} and said.deleted == {"old.json"}
    assert said.stats is not None and (said.stats.bytes, said.stats.total_transfers) == (10, 2)
    assert said.errors == ("not json at all",)  # rclone's own summary of errors is not counted twice
    assert parse_line('2026/12/06 05:38:42 Failed to create file system for "x:": boom') == {
        "level": "error",
        "msg": 'Failed to create file system for "x:": boom',
    }


# Lines as the services write them (rclone's backends pass their error codes on unchanged).
RECORDED = [
    ('googleapi: Error 403: User rate limit exceeded., userRateLimitExceeded', FailureKind.RATE_LIMITED),
    ("googleapi: Error 403: The user's Drive storage quota has been exceeded., storageQuotaExceeded",
     FailureKind.FATAL),
    ('couldn\'t fetch token: invalid_grant: maybe token expired? - try refreshing with "rclone config '
     'reconnect gdrive:"', FailureKind.SIGN_IN),
    ("Duplicate object found in destination - ignoring", FailureKind.FATAL),
    ("SlowDown: Please reduce your request rate. status code: 503", FailureKind.RATE_LIMITED),
    ("InvalidAccessKeyId: The AWS Access Key Id you provided does not exist.", FailureKind.SIGN_IN),
    ("dial tcp: lookup api.backblazeb2.com: no such host", FailureKind.OFFLINE),
]  # fmt: skip


@pytest.mark.parametrize(("message", "kind"), RECORDED)
def test_each_failure_of_a_service_has_its_kind_and_one_line(message: str, kind: FailureKind) -> None:
    found = problem(1, Said(errors=(message,)), "gdrive", "gdrive:opencode-sessions")
    assert found is not None and found[0] is kind
    line = found[1]
    assert "\n" not in line and "gdrive:" in line
    if kind is FailureKind.SIGN_IN:
        assert "rclone config reconnect gdrive:" in line
    if "Duplicate" in message:
        assert "rclone dedupe gdrive:opencode-sessions" in line
    assert problem(0, Said(), "gdrive", "gdrive:") is None


def test_a_file_of_the_same_size_already_there_is_replaced_all_the_same(
    rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WebDAV shares no hash with a local file, so rclone compares sizes only: a staged file left by a cut
    upload, of the same size, would stay, and be moved in under a manifest naming other content."""
    use_config(rclone_servers, tmp_path, monkeypatch)
    remote = remote_for(rclone_servers, "t-dav")
    client = _client(remote.spec)
    spec = parse_spec(remote.spec)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "s.json").write_text('{"v": "old"}')
    assert client.upload(tmp_path / "a", spec.at(), ["s.json"], threading.Event()).copied == {"s.json"}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "s.json").write_text('{"v": "new"}')  # the same size
    said = client.upload(tmp_path / "b", spec.at(), ["s.json"], threading.Event())
    assert said.copied == {"s.json"}
    assert (remote.served / "s.json").read_text() == '{"v": "new"}'


def _client(spec: str) -> rclone.Rclone:
    binary = rclone.find_binary()
    assert binary is not None
    parsed = parse_spec(spec)
    return rclone.Rclone(binary, parsed, rclone.Options())


def test_a_wrong_password_is_one_line_naming_rclone_config(
    rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = use_config(rclone_servers, tmp_path, monkeypatch)
    config.write_text(config.read_text().replace("pass = ", "pass = x", 1))  # no longer the password
    remote = remote_for(rclone_servers, "t-sftp")
    with pytest.raises(RcloneFailed) as caught:
        _client(remote.spec).listing(parse_spec(remote.spec).at(), threading.Event())
    assert caught.value.kind is FailureKind.SIGN_IN
    assert "rclone config" in str(caught.value) and "\n" not in str(caught.value)


def test_a_server_that_is_down_is_offline_and_fails_fast(
    rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = use_config(rclone_servers, tmp_path, monkeypatch)
    port = str(rclone_servers.webdav.port)
    config.write_text(config.read_text().replace(f"127.0.0.1:{port}", "127.0.0.1:9"))  # the discard port
    spec = RemoteSpec("t-dav", "x")
    client = _client(spec.text)
    (tmp_path / "f").write_text("x")
    with pytest.raises(RcloneFailed) as caught:
        client.upload(tmp_path, spec.at(), ["f"], threading.Event())
    assert caught.value.kind is FailureKind.OFFLINE
    assert "cannot be reached" in str(caught.value)


def test_the_remotes_of_the_users_config_are_listed_without_their_settings(
    rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_config(rclone_servers, tmp_path, monkeypatch)
    binary = rclone.find_binary()
    assert binary is not None
    assert rclone.list_remotes(binary) == {"t-sftp": "sftp", "t-dav": "webdav"}


def test_a_daemon_left_by_a_process_that_died_is_ended_and_no_other(tmp_path: Path) -> None:
    """Windows and macOS cannot make a child die with its parent: the next start ends the leftover, found by
    its pid and start time, and never a process that merely got its pid, nor one whose parent lives."""
    code = (
        "import subprocess as s, sys; print(s.Popen(['sleep', '60'], stdout=s.DEVNULL, stderr=s.DEVNULL).pid)"
    )
    orphan = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=20
    )
    pid = int(orphan.stdout)
    pidfile = tmp_path / "rcd.pid"
    process.note_child(pidfile, pid)
    process.end_leftover(pidfile)
    assert not process.pid_alive(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not pidfile.exists()
    mine = subprocess.Popen(["sleep", "60"])  # its parent (this process) lives: not a leftover
    try:
        process.note_child(pidfile, mine.pid)
        process.end_leftover(pidfile)
        assert mine.poll() is None
        pidfile.write_text(f"{mine.pid} 12345.0")  # another start time: another process with that pid
        process.end_leftover(pidfile)
        assert mine.poll() is None
    finally:
        mine.kill()
        mine.wait()


def _answering(returncode: int, stderr: str) -> rclone.Rclone:
    """A client whose every command ends with ``returncode`` and ``stderr`` (a recorded run)."""

    def runner(argv: list[str], **kwargs: object) -> rclone.RunResult:
        return rclone.RunResult(returncode, "", stderr)

    return rclone.Rclone("rclone", RemoteSpec("nas", "backups"), rclone.Options(), runner=runner)


def test_only_rclones_directory_not_found_reads_as_an_empty_folder() -> None:
    """Exit 3 is rclone's "directory not found"; any other failure that says "not found" (a 404 from a
    proxy, a lost bucket) is a failure, not an empty folder whose ledger would be thrown away."""
    gone = '{"level":"error","msg":"error listing: directory not found"}'
    assert _answering(3, gone).listing("nas:backups/laptop", threading.Event()) == "[]"
    failed = '{"level":"error","msg":"error listing: couldn\'t list files: 404 Not Found"}'
    with pytest.raises(RcloneFailed):
        _answering(1, failed).listing("nas:backups/laptop", threading.Event())


@pytest.mark.parametrize("name", ["t-sftp", "t-dav"])
def test_a_folder_not_on_the_server_yet_lists_as_empty(
    rclone_servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    use_config(rclone_servers, tmp_path, monkeypatch)
    remote = remote_for(rclone_servers, name)
    assert _client(remote.spec).listing(parse_spec(remote.spec).at("laptop"), threading.Event()) == "[]"
