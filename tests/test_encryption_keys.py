"""This install's keys: a real Secret Service (gnome-keyring on a private D-Bus session bus) keeps the
identity, the 0600 file is used where no keyring runs (with a one-line warning), and the ``encryption``
command's key handling (unlock, a wrong key, export-key, add-recipient) through the real command line."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.crypt import age
from app.crypt.keys import IDENTITY_FILE, KeyStore
from app.errors import CryptError
from tests import dbfactory as f
from tests.backups import ROOT

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def home_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND")
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local/share"),
        XDG_STATE_HOME=str(home / ".local/state"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_RUNTIME_DIR=str(home / "run"),
    )
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    env.update(extra)
    return env


@pytest.fixture
def secret_service(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private session bus with gnome-keyring's Secret Service on it, its login keyring unlocked; the
    environment that reaches it."""
    assert shutil.which("gnome-keyring-daemon") and shutil.which("dbus-daemon"), "see .ci/tools"
    env = home_env(tmp_path / "home")
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"], stdout=subprocess.PIPE, env=env
    )
    assert bus.stdout is not None
    env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().decode().strip()
    bus.stdout.close()
    keyring = subprocess.run(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets", "--daemonize"],
        input=b"login password of the test",
        env=env,
        capture_output=True,
        timeout=20,
        check=True,
    )
    pid = next(
        (int(line.split("=")[1]) for line in keyring.stdout.decode().splitlines() if "PID=" in line), None
    )
    try:
        yield env
    finally:
        if pid:
            with_gone(pid)
        bus.terminate()
        bus.wait(10)


def with_gone(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 15)


def with_store(folder: Path, *statements: str) -> str:
    """Child code that makes ``s``, a KeyStore of ``folder``, then runs ``statements``."""
    return "\n".join(
        [
            "from pathlib import Path",
            "from app.crypt.keys import KeyStore",
            f"s = KeyStore(Path({str(folder)!r}))",
            *list(statements),
        ]
    )


def in_child(env: dict[str, str], code: str) -> str:
    """Run ``code`` in a fresh interpreter with ``env`` (the keyring is read as a new process reads it)."""
    done = subprocess.run(
        [sys.executable, "-c", code], env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_identity_is_kept_by_a_real_secret_service_and_never_in_a_file(
    secret_service: dict[str, str], tmp_path: Path
) -> None:
    secret, public = age.new_identity()
    folder = tmp_path / "config"
    assert (
        in_child(secret_service, with_store(folder, f"print(s.add_identity({secret!r}))"))
        == "the system keyring"
    )
    assert not (folder / IDENTITY_FILE).exists()
    assert in_child(secret_service, with_store(folder, "print(*s.identities())")) == secret  # a new process
    stored = b"".join(p.read_bytes() for p in (tmp_path / "home").rglob("*") if p.is_file())
    assert secret.encode() not in stored  # gnome-keyring keeps it encrypted on disk
    assert public not in in_child(secret_service, "import keyring; print(keyring.get_keyring())")


def test_without_a_keyring_the_key_is_a_0600_file_in_age_format_with_a_warning(tmp_path: Path) -> None:
    env = home_env(tmp_path / "home")  # no session bus: no Secret Service
    secret, public = age.new_identity()
    folder = tmp_path / "config"
    code = with_store(folder, f"print(s.add_identity({secret!r}))", "print(s.warning())")
    where, warning = in_child(env, code).splitlines()
    assert where == str(folder / IDENTITY_FILE)
    assert "no system keyring works here" in warning and str(folder / IDENTITY_FILE) in warning
    assert stat.S_IMODE((folder / IDENTITY_FILE).stat().st_mode) == 0o600
    sealed = tmp_path / "x.age"
    sealed.write_bytes(age.encrypt(b"opened by age itself", [public]))
    out = subprocess.run(
        ["age", "-d", "-i", str(folder / IDENTITY_FILE), str(sealed)],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert out.stdout == b"opened by age itself"


def test_a_damaged_key_file_is_a_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / IDENTITY_FILE).write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    with pytest.raises(CryptError, match="not an age secret key") as caught:
        KeyStore(folder, keyring=None).identities()
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------ the command line
@pytest.fixture
def world(tmp_path: Path) -> dict[str, object]:
    """An opencode with two sessions and an encrypted backup of it made by this install (home ``a``)."""
    data = tmp_path / "opencode"
    conn = f.create_db(data / "opencode.db")
    f.add_session(conn, "ses_a", title="a title nobody may read")
    f.add_session(conn, "ses_b")
    conn.close()
    env = home_env(tmp_path / "a", **NO_KEYRING)
    out = cli(
        env, tmp_path, "encryption", "enable", "--yes", "--recovery-file", str(tmp_path / "recovery.txt")
    )
    assert out.returncode == 0, out.stderr
    return {"env": env, "tmp": tmp_path, "recovery": tmp_path / "recovery.txt"}


def cli(
    env: dict[str, str], tmp: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    flags = ["--backup-path", str(tmp / "backup"), "--machine-name", "box"]
    if args[0] in ("restore", "list", "sync", "encryption"):
        flags += ["--source", str(tmp / "opencode")]
    return subprocess.run(
        [sys.executable, "-m", "app", *args, *flags], cwd=ROOT, env=env, input=stdin, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip


def test_enable_writes_the_recovery_key_0600_and_encrypts_the_backup(world: dict[str, object]) -> None:
    tmp, recovery = world["tmp"], world["recovery"]
    assert isinstance(tmp, Path) and isinstance(recovery, Path)
    assert stat.S_IMODE(recovery.stat().st_mode) == 0o600
    assert "AGE-SECRET-KEY-1" in recovery.read_text()
    files = [p for p in (tmp / "backup" / "box" / "sessions").rglob("*.json")]
    assert len(files) == 2 and all(age.is_sealed(p.read_bytes()) for p in files)
    status = cli(world["env"], tmp, "encryption", "status", "--json")  # type: ignore[arg-type]
    doc = json.loads(status.stdout)
    assert doc["enabled"] is True and doc["can_decrypt"] is True and len(doc["recipients"]) == 2
    assert doc["folder"] == "encrypted"


def test_a_new_home_without_the_key_cannot_list_and_a_wrong_key_changes_nothing(
    world: dict[str, object],
) -> None:
    tmp = world["tmp"]
    assert isinstance(tmp, Path)
    other = home_env(tmp / "b", **NO_KEYRING)
    listed = cli(other, tmp, "list", "--json")
    assert listed.returncode == 0 and "a title nobody may read" not in listed.stdout
    assert "(encrypted)" in listed.stdout
    restore = cli(other, tmp, "restore", "ses_a", "--yes")
    assert restore.returncode == 2 and "encryption unlock" in restore.stderr
    assert len(restore.stderr.strip().splitlines()) == 1
    wrong, _ = age.new_identity()
    unlock = cli(other, tmp, "encryption", "unlock", stdin=wrong + "\n")
    assert unlock.returncode == 2 and "opens none of the backup's encrypted files" in unlock.stderr
    assert not (tmp / "b" / ".config" / "opencode-session-backup").exists()  # nothing kept
    junk = cli(other, tmp, "encryption", "unlock", stdin="not a key\n")
    assert junk.returncode == 2 and len(junk.stderr.strip().splitlines()) == 1


def test_unlock_with_the_recovery_key_lets_a_new_home_read_the_backup(world: dict[str, object]) -> None:
    tmp, recovery = world["tmp"], world["recovery"]
    assert isinstance(tmp, Path) and isinstance(recovery, Path)
    other = home_env(tmp / "b", **NO_KEYRING)
    unlock = cli(other, tmp, "encryption", "unlock", "--recovery-file", str(recovery))
    assert unlock.returncode == 0, unlock.stderr
    listed = cli(other, tmp, "list", "--json")
    assert "a title nobody may read" in listed.stdout


def test_export_key_writes_an_identity_file_age_opens_the_backup_with(world: dict[str, object]) -> None:
    tmp = world["tmp"]
    assert isinstance(tmp, Path)
    out = cli(world["env"], tmp, "encryption", "export-key", "--output", str(tmp / "mine.txt"))  # type: ignore[arg-type]
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE((tmp / "mine.txt").stat().st_mode) == 0o600
    session = next((tmp / "backup" / "box" / "sessions").rglob("ses_a.json"))
    plain = subprocess.run(
        ["age", "-d", "-i", str(tmp / "mine.txt"), str(session)], capture_output=True, timeout=30, check=True
    )
    assert json.loads(plain.stdout)["session_id"] == "ses_a"
    again = cli(world["env"], tmp, "encryption", "export-key", "--output", str(tmp / "mine.txt"))  # type: ignore[arg-type]
    assert again.returncode == 2  # never over an existing file


def test_add_recipient_refuses_what_is_not_a_public_key_and_re_encrypts_for_one(
    world: dict[str, object],
) -> None:
    tmp = world["tmp"]
    assert isinstance(tmp, Path)
    env = world["env"]
    bad = cli(env, tmp, "encryption", "add-recipient", "age1nope")  # type: ignore[arg-type]
    assert bad.returncode == 2 and "not an age public key" in bad.stderr
    friend_secret, friend = age.new_identity()
    assert cli(env, tmp, "encryption", "add-recipient", friend).returncode == 0  # type: ignore[arg-type]
    assert cli(env, tmp, "sync").returncode == 0  # type: ignore[arg-type]
    for path in (tmp / "backup" / "box" / "sessions").rglob("*.json"):
        assert age.decrypt(path.read_bytes(), [friend_secret], path.name)


def test_disable_asks_first_and_then_decrypts_the_backup(world: dict[str, object]) -> None:
    tmp = world["tmp"]
    assert isinstance(tmp, Path)
    env = world["env"]
    asked = cli(env, tmp, "encryption", "disable")  # type: ignore[arg-type]
    assert asked.returncode == 2 and "--yes" in asked.stderr  # no terminal to ask: nothing changed
    assert all(age.is_sealed(p.read_bytes()) for p in (tmp / "backup" / "box" / "sessions").rglob("*.json"))
    done = cli(env, tmp, "encryption", "disable", "--yes")  # type: ignore[arg-type]
    assert done.returncode == 0, done.stderr
    assert not any(
        age.is_sealed(p.read_bytes()) for p in (tmp / "backup" / "box" / "sessions").rglob("*.json")
    )
