"""Encryption of the backup folder (age): what a sync writes, what readers accept, and the re-encryption
of a folder in place when encryption is turned on, off or given another recipient. Real files, real
age (pyrage); real opencode lives in tests/test_encryption_opencode.py."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.backup import backup_reader as br
from app.backup import manifest as mf
from app.backup import restore as rs
from app.backup import verify as vf
from app.backup.result import Outcome
from app.backup.sync import SyncOptions, run_sync
from app.crypt import age
from app.crypt.seal import Seal
from app.errors import BackupDamaged, KeyMissing
from tests import dbfactory as f
from tests.backups import Env, make_env

SECRET_TITLE = "Quarterly numbers for Zanzibar Holdings"
SECRET_DIR = "/home/alice/clients/zanzibar-holdings"
SECRET_TEXT = "the password is hunter2-zanzibar"


@pytest.fixture
def keys() -> tuple[str, str]:
    return age.new_identity()


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = make_env(tmp_path)
    conn = f.create_db(env.db)
    f.add_project(conn, "proj1", SECRET_DIR)
    f.add_session(conn, "ses_a", title=SECRET_TITLE, messages=3, parts=2)
    conn.execute("UPDATE session SET directory = ? WHERE id = 'ses_a'", (SECRET_DIR,))
    conn.commit()
    f.add_message(conn, "ses_a", SECRET_TEXT)
    f.add_session(conn, "ses_b", project="proj2", messages=2)
    conn.close()
    legacy = env.data / "storage" / "session" / "info" / "proj1"
    legacy.mkdir(parents=True)
    (legacy / "ses_old.json").write_text(json.dumps({"id": "ses_old", "title": SECRET_TITLE}))
    return env


def sealed(keys: tuple[str, str]) -> Seal:
    secret, public = keys
    return Seal([public], lambda: [secret])


def sync(env: Env, seal: Seal, **kw: Any) -> Any:
    result = run_sync(env.context(seal=seal), SyncOptions(**kw))
    assert result.outcome in (Outcome.OK, Outcome.WARNING), result.error
    return result


def every_file(machine: Path) -> dict[str, bytes]:
    return {p.relative_to(machine).as_posix(): p.read_bytes() for p in machine.rglob("*") if p.is_file()}


def assert_nothing_in_clear(machine: Path) -> None:
    for rel, data in every_file(machine).items():
        for word in (SECRET_TITLE, SECRET_DIR, SECRET_TEXT, "zanzibar", "Zanzibar"):
            assert word.encode() not in data, (rel, word)


def data_files(machine: Path) -> dict[str, bytes]:
    """The files a sync writes for the data (not the index, the log, the ownership records)."""
    return {
        rel: data
        for rel, data in every_file(machine).items()
        if rel.startswith(("sessions/", "snapshots/", "storage/", "versions/"))
    }


def test_an_encrypted_sync_writes_nothing_a_reader_without_the_key_can_read(env: Env, keys: Any) -> None:
    sync(env, sealed(keys), snapshot=True)
    files = data_files(env.machine)
    assert {rel.split("/")[0] for rel in files} == {"sessions", "snapshots", "storage"}
    assert all(age.is_sealed(data) for data in files.values())
    assert_nothing_in_clear(env.machine)
    man = mf.load(env.machine, "laptop")
    assert man.encryption == mf.Encryption((keys[1],))  # a new folder is of the new kind at once
    assert all(e.title.startswith("age:") and e.directory.startswith("age:") for e in man.sessions.values())


def test_the_manifest_digests_are_of_the_encrypted_bytes_so_verify_needs_no_key(env: Env, keys: Any) -> None:
    sync(env, sealed(keys), snapshot=True)
    without = vf.verify(env.machine, "laptop", env.app / "verify")
    assert without.ok and any("digests only" in n for n in without.notes)
    with_key = vf.verify(env.machine, "laptop", env.app / "verify", seal=sealed(keys))
    assert with_key.ok and not with_key.notes


def test_a_session_restores_from_an_encrypted_backup_and_not_without_the_key(env: Env, keys: Any) -> None:
    sync(env, sealed(keys))
    f.delete_session(env.db, "ses_a")
    req = rs.RestoreRequest(env.machine, env.db, env.app, ids=("ses_a",))
    with pytest.raises(KeyMissing, match="encryption unlock"):
        rs.make_plan(req)
    plan = rs.make_plan(rs.RestoreRequest(env.machine, env.db, env.app, ids=("ses_a",), seal=sealed(keys)))
    assert [(i.session_id, i.title) for i in plan.items] == [("ses_a", SECRET_TITLE)]
    result = rs.apply_plan(
        plan, rs.RestoreRequest(env.machine, env.db, env.app, ids=("ses_a",), seal=sealed(keys))
    )
    assert result.ok
    assert not list(env.app.glob("restore-opened*"))  # the decrypted copies the plan kept are gone
    with sqlite3.connect(env.db) as conn:
        assert conn.execute("SELECT title FROM session WHERE id = 'ses_a'").fetchone() == (SECRET_TITLE,)


def test_a_restore_planned_meanwhile_leaves_the_decrypted_copies_of_another_plan_alone(
    env: Env, keys: Any
) -> None:
    """The tray's plan waits at its confirmation while the agent (or the command line) plans one and lets
    it go: each plan keeps its own decrypted copies, and those of a plan let go are removed at once."""
    sync(env, sealed(keys))
    f.delete_session(env.db, "ses_a")
    req = rs.RestoreRequest(env.machine, env.db, env.app, ids=("ses_a",), seal=sealed(keys))
    waiting = rs.make_plan(req)
    with rs.make_plan(req) as let_go:
        assert let_go.opened is not None and any(let_go.opened.rglob("*.json"))
    assert not let_go.opened.exists()
    result = rs.apply_plan(waiting, req)
    assert result.ok and [sid for sid, _n in result.restored] == ["ses_a"], result.failed
    assert not list(env.app.glob("restore-opened*"))


def test_decrypted_copies_a_crash_left_are_removed_by_the_next_plan_once_a_day_old(
    env: Env, keys: Any
) -> None:
    sync(env, sealed(keys))
    old, recent, shared = (env.app / n for n in ("restore-opened-1", "restore-opened-2", "restore-opened"))
    for folder in (old, recent, shared):
        (folder / "proj").mkdir(parents=True)
        (folder / "proj" / "ses_a.json").write_text(SECRET_TITLE)
    os.utime(old, (1, 1))
    with rs.make_plan(rs.RestoreRequest(env.machine, env.db, env.app, missing=True, seal=sealed(keys))):
        assert not old.exists() and not shared.exists()  # a day old, and the folder older versions shared
        assert recent.exists()  # perhaps a plan waiting at its confirmation


def test_hostile_files_are_one_line_refusals(env: Env, keys: Any) -> None:
    sync(env, sealed(keys))
    path = env.machine / mf.load(env.machine, "laptop").sessions["ses_a"].path
    good = path.read_bytes()
    other = age.new_identity()
    cases = {
        "truncated": good[: len(good) // 2],
        "another recipient": age.encrypt(age.decrypt(good, [keys[0]], "x"), [other[1]]),
        "not age at all": b"age-encryption.org/v1\n-> garbage\n",
    }
    seal = sealed(keys).for_folder(True)
    for why, data in cases.items():
        with pytest.raises(BackupDamaged) as caught:
            br.parse_session(data, path, "ses_a", seal=seal)
        assert "\n" not in str(caught.value), why
    plain = age.decrypt(good, [keys[0]], "x")  # a sound session file, plain where an encrypted one belongs
    assert br.parse_session(plain, path, "ses_a", seal=sealed(keys).for_folder(False))
    with pytest.raises(BackupDamaged, match="not encrypted") as caught:
        br.parse_session(plain, path, "ses_a", seal=seal)
    assert "\n" not in str(caught.value)


def test_restore_missing_restores_every_sound_session_and_names_the_one_it_cannot_read(
    env: Env, keys: Any
) -> None:
    sync(env, sealed(keys))
    man = mf.load(env.machine, "laptop")
    damaged = env.machine / man.sessions["ses_a"].path
    damaged.write_bytes(damaged.read_bytes()[:-20])  # the last chunk's tag is cut: age refuses it
    f.delete_session(env.db, "ses_a")
    f.delete_session(env.db, "ses_b")
    req = rs.RestoreRequest(env.machine, env.db, env.app, missing=True, seal=sealed(keys))
    plan = rs.make_plan(req)
    result = rs.apply_plan(plan, req)
    assert [sid for sid, _n in result.restored] == ["ses_b"]
    assert [sid for sid, _why in result.failed] == ["ses_a"] and "decrypt" in result.failed[0][1]
    report = vf.verify(env.machine, "laptop", env.app / "verify", seal=sealed(keys))
    assert any(man.sessions["ses_a"].path in p for p in report.problems)


def test_enable_on_a_plain_backup_re_encrypts_every_file_and_version_in_place(env: Env, keys: Any) -> None:
    sync(env, Seal(), snapshot=True)
    conn = f.connect(env.db)
    f.add_message(conn, "ses_a", "a newer reply")  # so versions/ holds the older plain copy
    conn.close()
    sync(env, Seal())
    assert any(rel.startswith("versions/") for rel in data_files(env.machine))
    result = sync(env, sealed(keys))
    assert result.rekeyed > 0
    files = data_files(env.machine)
    assert all(age.is_sealed(data) for data in files.values()), [
        r for r, d in files.items() if not age.is_sealed(d)
    ]
    assert_nothing_in_clear(env.machine)
    assert mf.load(env.machine, "laptop").encryption == mf.Encryption((keys[1],))
    assert vf.verify(env.machine, "laptop", env.app / "verify", seal=sealed(keys)).ok


def test_disable_brings_back_plain_files_and_a_plain_manifest(env: Env, keys: Any) -> None:
    sync(env, sealed(keys), snapshot=True)
    result = sync(env, Seal((), lambda: [keys[0]]))
    assert result.rekeyed > 0
    files = data_files(env.machine)
    assert not any(age.is_sealed(data) for data in files.values())
    man = mf.load(env.machine, "laptop")
    assert man.encryption == mf.PLAIN and man.sessions["ses_a"].title == SECRET_TITLE
    assert vf.verify(env.machine, "laptop", env.app / "verify").ok


def test_a_new_recipient_gets_every_file(env: Env, keys: Any) -> None:
    sync(env, sealed(keys))
    friend = age.new_identity()
    sync(env, Seal([keys[1], friend[1]], lambda: [keys[0]]))
    for rel, data in data_files(env.machine).items():
        assert age.decrypt(data, [friend[0]], rel)  # the new recipient opens every file


def test_a_rekey_that_cannot_open_the_files_fails_the_sync_and_changes_nothing(env: Env, keys: Any) -> None:
    sync(env, sealed(keys))
    before = every_file(env.machine)
    stranger = age.new_identity()
    result = run_sync(env.context(seal=Seal([stranger[1]], lambda: [stranger[0]])))
    assert result.outcome is Outcome.FAILED and "encryption unlock" in result.error
    after = data_files(env.machine)
    # the sync itself backed nothing new up; no existing file was rewritten for keys that cannot open it
    assert {rel: d for rel, d in before.items() if rel in after} == after


def test_the_last_result_and_log_name_no_file_of_the_user_in_an_encrypted_folder(env: Env, keys: Any) -> None:
    sync(env, sealed(keys))
    man = mf.load(env.machine, "laptop")
    assert "destination" not in man.last_result and "private" not in man.last_result  # nothing to say
    assert str(env.tmp) not in (env.machine / "manifest.json").read_text()


def test_a_plain_backup_is_untouched_by_the_encryption_code(env: Env) -> None:
    sync(env, Seal(), snapshot=True)
    assert not any(age.is_sealed(d) for d in data_files(env.machine).values())
    assert json.loads((env.machine / "manifest.json").read_text())["format"].endswith("/3")
    assert os.listdir(env.machine).count(".rekey") == 0


def test_a_running_service_follows_encryption_turned_on_beside_it(env: Env) -> None:
    """The service's sync asks for its seal at each start: after ``encryption enable`` (keys kept, the
    setting written) its next sync writes encrypted files, with no restart."""
    from app import config, wiring
    from app import encryption as enc

    settings = config.load({"backupPath": str(env.dest), "source": str(env.data), "machineName": "laptop"})
    seal = wiring.SettingsSeal(settings)
    assert not seal.current().on
    keys = enc.new_keys()
    assert keys.own_secret is not None and keys.recovery_secret is not None
    enc.keep(keys.recipients, keys.own_secret)
    now = seal.current()
    assert now.on and set(now.recipients) == {keys.recipients.own, keys.recipients.recovery}
    assert run_sync(env.context(seal=seal)).ok
    assert all(age.is_sealed(d) for d in data_files(env.machine).values())
    enc.disable()
    assert not seal.current().on


def test_the_service_sees_its_settings_file_replaced_with_the_same_size_and_time(env: Env) -> None:
    """An editor's atomic save that keeps the size and lands in the same clock tick (here: the time set
    back) is a new file: the running service follows the switch it holds."""
    from app import config, wiring
    from app import encryption as enc

    settings = config.load({"backupPath": str(env.dest), "source": str(env.data), "machineName": "laptop"})
    seal = wiring.SettingsSeal(settings)
    assert not seal.current().on
    keys = enc.new_keys()
    assert keys.own_secret is not None
    enc.keep(keys.recipients, keys.own_secret)
    path = settings.config_file
    before = path.stat()
    assert seal.current().on and b'"encryption": true' in path.read_bytes()
    written = path.with_name("edited.tmp")
    written.write_bytes(path.read_bytes().replace(b'"encryption": true', b'"encryption":false'))
    os.utime(written, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(written, path)
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    assert not seal.current().on


def test_history_show_and_search_read_an_encrypted_backup_with_the_key_and_say_so_without(
    env: Env, keys: Any
) -> None:
    from app.backup import asof, search, search_index, transcript
    from app.backup.history import history

    seal = sealed(keys)
    sync(env, seal)
    conn = f.connect(env.db)
    f.add_message(conn, "ses_a", "a second turn about zanzibar")
    conn.close()
    sync(env, seal)
    h = history(env.machine, "ses_a", env.app, seal=Seal((), lambda: [keys[0]]))
    assert h.title == SECRET_TITLE and len(h.copies) == 2
    doc = asof.read_copy(h, h.copies[0], env.app)
    assert "hunter2" in transcript.words(doc)
    hits, skipped = search.search(env.dest, "hunter2", 10, seal=Seal((), lambda: [keys[0]]))
    assert [hit.session_id for hit in hits] == ["ses_a"] and not skipped
    search_index.remove(search_index.index_path(env.dest))
    hits, skipped = search.search(env.dest, "hunter2", 10)  # no key: nothing read, each file named
    assert hits == [] and skipped and all("no key" in why for _m, _rel, why in skipped)
    with pytest.raises(KeyMissing, match="encryption unlock"):
        history(env.machine, "ses_a", env.app)


def test_a_file_is_taken_for_an_age_file_by_its_own_first_bytes_never_through_a_symlink(
    tmp_path: Path, keys: tuple[str, str]
) -> None:
    sealed_file, plain = tmp_path / "a.json", tmp_path / "b.json"
    sealed_file.write_bytes(age.encrypt(b"{}", [keys[1]]))
    plain.write_bytes(b"{}")
    assert age.file_is_sealed(sealed_file) and not age.file_is_sealed(plain)
    assert not age.file_is_sealed(tmp_path / "gone.json")  # cannot be read: the reader says why
    if hasattr(os, "O_NOFOLLOW"):
        (tmp_path / "link.json").symlink_to(sealed_file)
        assert not age.file_is_sealed(tmp_path / "link.json")


def test_verify_does_not_trust_a_symlink_in_place_of_a_backed_up_file(
    env: Env, keys: tuple[str, str]
) -> None:
    """Encrypted, a legacy file replaced by a symlink to its own bytes elsewhere (digest and magic would
    match through it) is reported, not read."""
    sync(env, sealed(keys))
    legacy = next((env.machine / "storage").rglob("ses_old.json"))
    outside = env.tmp / "elsewhere.json"
    outside.write_bytes(legacy.read_bytes())
    legacy.unlink()
    legacy.symlink_to(outside)
    report = vf.verify(env.machine, "laptop", env.app / "verify", seal=sealed(keys))
    assert not report.ok and any("ses_old.json" in p and "symlink" in p for p in report.problems)
