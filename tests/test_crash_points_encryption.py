"""A crash at every write, rename, link, unlink and fsync of ``encryption enable`` (and of ``disable``) on
an existing backup, one run per boundary, as tests/test_crash_points.py does for a sync: the process ends
with ``os._exit`` at the k-th boundary inside the backup folder. After each crash the backup is wholly
readable with the key (every session file, snapshot and legacy file opens, and verify accepts it); the
next sync completes the re-encryption, after which every file is of the new kind and the backup holds
exactly what opencode has."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup.sync import SyncOptions, run_sync
from app.backup.verify import verify
from app.crypt import age
from app.crypt.keys import KeyStore
from app.crypt.seal import Seal
from tests import dbfactory as f
from tests.backups import sync_context
from tests.test_crash_points import home_env, live_messages, run_cli_at

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain backup of 3 sessions, 2 legacy files, a snapshot and a kept version; no change pending."""
    base = tmp_path_factory.mktemp("plain")
    env = {**home_env(base / "home"), **NO_KEYRING}
    conn = f.seed(base / "opencode", sessions=3, legacy=2, messages=2, parts=1)
    assert run_cli_at(0, base, env, "sync", "--snapshot", "--source", str(base / "opencode"))[0] == 0
    f.add_message(conn, "ses_1", "a newer reply: the older file goes to versions/")
    conn.close()
    assert run_cli_at(0, base, env, "sync", "--source", str(base / "opencode"))[0] == 0
    assert list((base / "backup" / "box" / "versions").rglob("ses_1.json"))
    return base


def copy_of(template: Path, where: Path) -> dict[str, str]:
    shutil.copytree(template, where, symlinks=True)
    return {**home_env(where / "home"), **NO_KEYRING}


def keys_of(base: Path, *, on: bool = True) -> Seal:
    """This computer's keys; what its syncs write to while encryption is ``on`` (else plain files)."""
    store = KeyStore(base / "home" / ".config" / "opencode-session-backup")
    recipients = store.recipients()
    return Seal(recipients.all if recipients and on else (), store.identities)


def data_files(machine: Path) -> dict[str, bytes]:
    return {
        p.relative_to(machine).as_posix(): p.read_bytes()
        for p in machine.rglob("*")
        if p.is_file() and p.relative_to(machine).parts[0] in ("sessions", "snapshots", "storage", "versions")
    }


def readable_with_the_key(base: Path, seal: Seal) -> None:
    """Every file the manifest names opens with the key and holds what opencode had (or has)."""
    machine = base / "backup" / "box"
    report = verify(machine, "box", base / "verify-work", seal=seal)
    assert report.ok, report.problems
    assert not any("digests only" in note for note in report.notes)  # the key opened everything
    man = mf.load(machine, "box")
    folder = seal.for_folder(man.encryption.sealed)
    live = live_messages(base)
    for sid, entry in man.sessions.items():
        doc = br.read_session(machine / entry.path, sid, seal=folder)
        assert len(doc.rows["message"]) == live[sid], sid
        assert folder.open_text(entry.title, sid) == f"title of {sid}"


def sync_after(base: Path, seal: Seal) -> None:
    """The next sync (in this process: what the service does), as this computer's install."""
    ctx = sync_context(
        base / "backup", "box", base / "opencode", base / "home" / ".local/state/opencode-session-backup",
        seal=seal,
    )  # fmt: skip
    result = run_sync(ctx, SyncOptions())
    assert result.ok, result.error


def run_enable(k: int, base: Path, env: dict[str, str]) -> tuple[int, int]:
    return run_cli_at(
        k, base, env, "encryption", "enable", "--yes", "--recovery-file", str(base / f"recovery-{k}.txt"),
        "--source", str(base / "opencode"),
    )  # fmt: skip


def test_a_crash_at_every_boundary_of_enable_leaves_a_backup_readable_with_the_key(
    plain: Path, tmp_path: Path
) -> None:
    env = copy_of(plain, tmp_path / "count")
    code, total = run_enable(0, tmp_path / "count", env)
    assert code == 0 and total > 20, total
    assert all(age.is_sealed(d) for d in data_files(tmp_path / "count" / "backup" / "box").values())
    for k in range(1, total + 1):
        base = tmp_path / f"k{k}"
        env = copy_of(plain, base)
        assert run_enable(k, base, env)[0] == 77, f"boundary {k} of {total} was never reached"
        seal = keys_of(base)
        readable_with_the_key(base, seal)
        sync_after(base, seal)
        machine = base / "backup" / "box"
        files = data_files(machine)
        assert all(age.is_sealed(d) for d in files.values()), (
            k,
            [r for r, d in files.items() if not age.is_sealed(d)],
        )
        assert mf.load(machine, "box").encryption == mf.Encryption(seal.recipients), k
        readable_with_the_key(base, seal)
        assert not (machine / ".rekey").exists() or not any((machine / ".rekey").iterdir()), k
        shutil.rmtree(base)
    print(f"{total} boundaries crossed by encryption enable; a crash at each left a readable backup")


def test_a_crash_at_every_boundary_of_disable_leaves_a_backup_readable_with_the_key(
    plain: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sealed = tmp_path_factory.mktemp("sealed") / "w"
    env = copy_of(plain, sealed)
    assert run_enable(0, sealed, env)[0] == 0
    env = copy_of(sealed, tmp_path / "count")
    args = ("encryption", "disable", "--yes", "--source")
    code, total = run_cli_at(0, tmp_path / "count", env, *args, str(tmp_path / "count" / "opencode"))
    assert code == 0 and total > 20, total
    for k in range(1, total + 1, 3):  # every third boundary: the steps of enable, the other way round
        base = tmp_path / f"k{k}"
        env = copy_of(sealed, base)
        assert run_cli_at(k, base, env, *args, str(base / "opencode"))[0] == 77, k
        seal = keys_of(base, on=False)
        readable_with_the_key(base, seal)
        sync_after(base, seal)
        files = data_files(base / "backup" / "box")
        assert not any(age.is_sealed(d) for d in files.values()), k
        readable_with_the_key(base, Seal())
        shutil.rmtree(base)
    assert os.path.isdir(sealed)
