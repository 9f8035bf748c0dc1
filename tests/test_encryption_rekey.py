"""Re-encryption in place when a file is busy, or large: the folder stays a valid backup that says what
it holds, and no plain byte is written into it while encryption is on."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from app.backup import manifest as mf
from app.backup import rekey
from app.backup import verify as vf
from app.backup.result import Outcome
from app.backup.sync import run_sync
from app.crypt import age
from app.crypt.seal import Seal
from app.errors import FailureKind
from tests import dbfactory as f
from tests import test_encryption as te
from tests.backups import Env
from tests.test_encryption import data_files, sealed, sync

env, keys = te.env, te.keys  # the fixtures: a database with secret words in it, and a key pair


def plain_with_a_version(env: Env) -> None:
    sync(env, Seal(), snapshot=True)
    conn = f.connect(env.db)
    f.add_message(conn, "ses_a", "a newer reply")  # so versions/ holds the older plain copy
    conn.close()
    sync(env, Seal())


def test_a_file_busy_during_a_rekey_fails_the_sync_to_be_retried_and_the_next_one_finishes(
    env: Env, keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_with_a_version(env)
    busy = next(env.machine / rel for rel in data_files(env.machine) if rel.startswith("versions/"))
    real_open = os.open
    refused: list[str] = []
    holding = [True]  # a cloud client holds it during the first sync

    def held(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if Path(path) == busy and not flags & (os.O_WRONLY | os.O_RDWR) and holding:
            refused.append(str(path))
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(os, "open", held)
    result = run_sync(env.context(seal=sealed(keys)))
    holding.clear()
    assert refused
    assert result.outcome is Outcome.FAILED and result.kind is FailureKind.LOCKED, result
    man = mf.load(env.machine, "laptop")
    assert man.encryption.rekey_to == (keys[1],)  # not yet wholly encrypted: readers take both forms
    assert not age.is_sealed(busy.read_bytes())
    assert vf.verify(env.machine, "laptop", env.app / "verify", seal=sealed(keys)).ok

    result = sync(env, sealed(keys))  # the next sync goes on where the rekey stopped
    files = data_files(env.machine)
    assert all(age.is_sealed(data) for data in files.values()), [
        r for r, d in files.items() if not age.is_sealed(d)
    ]
    assert mf.load(env.machine, "laptop").encryption == mf.Encryption((keys[1],))
    assert vf.verify(env.machine, "laptop", env.app / "verify", seal=sealed(keys)).ok


def test_a_large_file_is_decrypted_on_this_computer_never_in_the_backup_folder(
    env: Env, keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync(env, sealed(keys), snapshot=True)
    monkeypatch.setattr(rekey, "IN_MEMORY", 0)  # every file goes the way a large snapshot does
    real = Seal.seal_into
    looked: list[int] = []

    def sealing(self: Seal, src: Any, dst: Any) -> None:  # the decrypted form is whole now
        looked.append(1)
        te.assert_nothing_in_clear(env.dest)
        real(self, src, dst)

    monkeypatch.setattr(Seal, "seal_into", sealing)
    friend = age.new_identity()
    result = sync(env, Seal([keys[1], friend[1]], lambda: [keys[0]]))
    assert looked and result.rekeyed > 0
    for rel, data in data_files(env.machine).items():
        assert age.decrypt(data, [friend[0]], rel)  # the new recipient opens every file
    assert vf.verify(env.machine, "laptop", env.app / "verify", seal=sealed(keys)).ok
