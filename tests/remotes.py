"""rclone's own servers on 127.0.0.1 for the tests of backups to a remote: ``rclone serve sftp`` and ``rclone
serve webdav`` over temp folders, and an rclone config naming them (``t-sftp``, ``t-dav``), as a user's
config names their NAS or their Drive. One pair of servers per test session; each test writes its own
folder on them and its own copy of the config (rclone writes what it learns about a server back into it).

The servers cache no folder listing (``--dir-cache-time 0s``): a test may put a new folder beside the served
ones and have it served at once. Still, never change a file a server has served behind its back: read it,
or go through rclone.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the engine is loaded by the tests that use it, not by the conftest that imports this
    from app.backup.sync import SyncContext
    from app.config import Settings

PASSWORD = "test-password-21"
USER = "backup"


def rclone() -> str:
    found = shutil.which("rclone")
    if found is None:
        pytest.skip("rclone is not installed (bash .ci/system-deps test installs it)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rclone serve {what} ended at once (exit {proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"rclone serve {what} did not listen on {port}")


@dataclass
class Server:
    """One of rclone's servers: what it serves, where, and how to stop and start it again."""

    kind: str  # sftp | webdav
    root: Path
    port: int
    cache: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [rclone(), "serve", self.kind, str(self.root), "--addr", f"127.0.0.1:{self.port}",
                "--user", USER, "--pass", PASSWORD, "--dir-cache-time", "0s"]  # fmt: skip
        env = {**os.environ, "RCLONE_CACHE_DIR": str(self.cache), "RCLONE_CONFIG": os.devnull}
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(self.port, self.proc, self.kind)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass(frozen=True)
class Servers:
    sftp: Server
    webdav: Server

    def config_text(self) -> str:
        obscured = subprocess.run(
            [rclone(), "obscure", PASSWORD], capture_output=True, text=True, check=True
        ).stdout.strip()
        return (
            f"[t-sftp]\ntype = sftp\nhost = 127.0.0.1\nport = {self.sftp.port}\nuser = {USER}\n"
            f"pass = {obscured}\n\n"
            f"[t-dav]\ntype = webdav\nurl = http://127.0.0.1:{self.webdav.port}/\nvendor = other\n"
            f"user = {USER}\npass = {obscured}\n"
        )

    def server(self, remote: str) -> Server:
        return self.sftp if remote == "t-sftp" else self.webdav


@pytest.fixture(scope="session")
def rclone_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("rclone-servers")
    servers = []
    for kind in ("sftp", "webdav"):
        root = base / kind
        root.mkdir()
        server = Server(kind, root, _free_port(), base / f"cache-{kind}")
        server.start()
        servers.append(server)
    try:
        yield Servers(*servers)
    finally:
        for server in servers:
            server.stop()


@dataclass(frozen=True)
class Remote:
    """One test's folder on one server: ``spec`` as backupPath takes it, and the folder it serves."""

    name: str  # t-sftp | t-dav
    path: str  # the folder on it
    server: Server

    @property
    def spec(self) -> str:
        return f"rclone:{self.name}:{self.path}"

    @property
    def served(self) -> Path:
        """The backup path's folder as the server keeps it (read it only)."""
        return self.server.root / self.path


def use_config(servers: Servers, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the test config of ``servers`` in ``tmp``, in force for this test (RCLONE_CONFIG)."""
    path = tmp / "rclone.conf"
    path.write_text(servers.config_text())
    monkeypatch.setenv("RCLONE_CONFIG", str(path))
    return path


def remote_for(servers: Servers, name: str = "t-sftp") -> Remote:
    return Remote(name, f"backups-{secrets.token_hex(4)}", servers.server(name))


def writes(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under ``root`` -> (inode, mtime_ns, size): what the server wrote shows as a change."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file():
            st = path.stat()
            found[path.relative_to(root).as_posix()] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def written(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> set[str]:
    """The files the server wrote between two :func:`writes` (new or rewritten)."""
    return {rel for rel, sig in after.items() if before.get(rel) != sig}


def remote_settings(data: Path, remote: Remote, machine: str = "laptop", **flags: object) -> Settings:
    """The settings of a backup of opencode's data folder ``data`` to ``remote`` (as the command line
    gives them), in this test's HOME (its cache holds the mirror, its state the install id)."""
    from app import config

    return config.load({"backupPath": remote.spec, "source": str(data), "machineName": machine, **flags})


def remote_context(
    data: Path, remote: Remote, machine: str = "laptop", *, resident: bool = False, **kw: Any
) -> SyncContext:
    """The sync context the app builds for ``remote`` (``resident``: the live service's, with one rclone
    kept running; ``kw``: fields to replace, a clock say). Give back what it holds with
    ``ctx.remote.release()``."""
    from app import wiring

    ctx = wiring.context_for(remote_settings(data, remote, machine), resident=resident)
    return dataclasses.replace(ctx, **kw) if kw else ctx
