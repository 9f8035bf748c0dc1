"""Shared fixtures: an isolated HOME for every test, and a check that no test leaks threads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# watchdog starts one process-wide inotify thread when first imported; the app imports it only when a
# service runs, so import it here, before any test, or the first test to start a service "leaks" it
import watchdog.observers  # noqa: F401


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and every XDG dir at the test's own folder; clear our environment variables."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("XDG_CACHE_HOME", ".cache"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    for var in (
        "OPENCODE_BACKUP_PATH",
        "OPENCODE_BACKUP_DEBUG",
        "OPENCODE_BACKUP_CONFIG",
        "OPENCODE_BACKUP_ENCRYPTION",
        "OPENCODE_DB",
        "OPENCODE_CONFIG_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    # no test reaches the keyring of the person running them (tests/test_encryption_keys.py starts its own)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    return home


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every thread a test starts must be stopped and joined by the end of the test."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.05)
    raise AssertionError(f"test leaked threads: {[t.name for t in leaked]}")


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """An empty source and an empty destination folder."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    return src, dst


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")


from tests.desktop import desktop  # noqa: E402, F401
from tests.peer.fixtures import make_opencode_peer, opencode_binary, opencode_peer  # noqa: E402, F401
from tests.remotes import rclone_servers  # noqa: E402, F401
