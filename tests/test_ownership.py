"""One writer per machine folder, healed instead of stuck: a writer lease from the future, with an absurd
offset or that is a folder is taken over with one warning line; a reinstall on the same computer carries
on in its own folder while another computer is still refused; ``adopt`` says "this folder is mine" when
the app cannot tell; two installs starting together never see owner.json half written. The machine
identity is read through a seam, so each system's branch runs here with recorded values.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app import paths
from app.backup import ownership
from app.backup.result import Outcome
from app.backup.sync import SyncContext, run_sync
from app.errors import BackupError, FailureKind
from app.platform import machine_id
from app.platform.machine_id import Readers
from app.service.retry import FailingSince
from app.service.status import ServiceState, Status
from app.ui import flows, presenter
from app.ui.notify import episode_note
from app.ui.tray.model import Action, MenuView, adoptable, menu_items
from tests import dbfactory as f
from tests.backups import Env, run_cli
from tests.files import tree

MACHINE = "m1"
HERE = "3d1219c7c4c5404aaa1f6d2a48adfda4/alice"  # this computer and account, as the seam says it
THERE = "0f0e0d0c0b0a09080706050403020100/alice"  # another computer, same user name


@pytest.fixture
def env(tmp_path: Path) -> Env:
    env = Env(tmp_path, MACHINE)
    conn = f.create_db(env.db)
    f.add_session(conn, "ses_a")
    conn.close()
    return env


def ctx(env: Env, install: str, identity: str | None) -> SyncContext:
    """A sync of an install with its own state folder (its own install id) on computer ``identity``."""
    return env.context(env.tmp / install, identity=lambda: identity)


def cli(env: Env, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command line; ``home``: another user folder (its own state folder and install id)."""
    moved = None
    if home is not None:
        moved = {
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_DATA_HOME": str(home / "data"),
        }
    return run_cli(env.dest, MACHINE, env.data, *args, env=moved)


# ---------------------------------------------------------------------------------------- the lease
def plant_lease(machine: Path, until: str) -> None:
    doc = {"format": ownership.FORMAT, "install": "f" * 32, "host": "desk", "until": until}
    (machine / ownership.LEASE).write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "until",
    ["9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59-14:00", "in 20 minutes", "not a time"],
)
def test_a_lease_from_the_future_or_damaged_is_taken_over_with_one_warning_line(
    env: Env, caplog: pytest.LogCaptureFixture, until: str
) -> None:
    assert run_sync(ctx(env, "a", HERE)).ok
    if until == "in 20 minutes":  # more than one lease (15 min) ahead: a clock far off, or damage
        until = (datetime.now(UTC) + timedelta(minutes=20)).isoformat()
    plant_lease(env.machine, until)
    caplog.set_level(logging.WARNING)
    result = run_sync(ctx(env, "a", HERE))
    assert result.ok, result.error
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "taking over the writer lease" in warnings[0].getMessage()
    assert not (env.machine / ownership.LEASE).exists()  # released after the sync


def test_a_lease_that_is_a_folder_is_set_aside_and_taken_over_on_the_command_line(
    env: Env,
) -> None:
    assert cli(env, "sync").returncode == 0
    (env.machine / ownership.LEASE).mkdir()
    (env.machine / ownership.LEASE / "kept").write_text("whatever it held")
    done = cli(env, "sync")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "taking over the writer lease" in lines[0] and "set aside" in lines[0], lines
    kept = list((env.machine / "damaged").glob("*/writer.lease/kept"))
    assert [p.read_text() for p in kept] == ["whatever it held"]  # moved, never deleted
    assert cli(env, "sync").returncode == 0 and cli(env, "sync").stderr == ""  # one warning, once


def test_a_lease_within_its_length_still_holds_off_a_second_writer(env: Env) -> None:
    assert run_sync(ctx(env, "a", HERE)).ok
    plant_lease(env.machine, (datetime.now(UTC) + timedelta(minutes=14)).isoformat())
    held = run_sync(ctx(env, "a", HERE))
    assert held.kind is FailureKind.LOCKED and "until" in (held.error or "")


# ---------------------------------------------------------------------------------------- a reinstall
def test_a_reinstall_on_the_same_computer_carries_on_and_another_computer_is_still_refused(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    assert run_sync(ctx(env, "first-install", HERE)).ok
    owner = (env.machine / ownership.OWNER).read_text()
    assert "3d1219c7" not in owner and "alice" not in owner  # only a salted hash of the identity
    caplog.set_level(logging.WARNING)
    again = run_sync(ctx(env, "after-a-reinstall", HERE))  # a new install id, the same computer
    assert again.ok, again.error
    assert [r.getMessage() for r in caplog.records if "install id changed" in r.getMessage()]
    before = tree(env.dest)
    other = run_sync(ctx(env, "laptop-2", THERE))  # another computer with the same machineName
    assert other.outcome is Outcome.FAILED and other.kind is FailureKind.FOREIGN
    assert "two computers use the machineName 'm1'" in (other.error or "") and "opencode-backup adopt" in (
        other.error or ""
    )
    assert tree(env.dest) == before
    assert run_sync(ctx(env, "unknown-computer", None)).kind is FailureKind.FOREIGN  # cannot tell: refuse


def test_a_wiped_state_folder_on_this_very_computer_is_not_locked_out_on_the_command_line(
    env: Env, tmp_path: Path
) -> None:
    """The issue's reproduction, through the real command and this computer's real identity."""
    if machine_id.this_account(paths.current_platform(), machine_id.system_readers()) is None:
        pytest.skip("this computer has no machine identity to read")
    home = tmp_path / "home"
    assert cli(env, "sync", home=home).returncode == 0
    (home / "state" / "opencode-session-backup" / "install-id").unlink()  # the local id is lost
    done = cli(env, "sync", home=home)
    assert done.returncode == 0, done.stderr
    assert "install id changed" in done.stderr and "two computers" not in done.stderr


def test_a_folder_claimed_before_hashes_were_kept_gains_one_at_its_owners_next_sync(
    env: Env,
) -> None:
    assert run_sync(ctx(env, "a", None)).ok  # no identity then
    assert "computer" not in json.loads((env.machine / ownership.OWNER).read_text())
    assert run_sync(ctx(env, "a", HERE)).ok
    assert run_sync(ctx(env, "reinstalled", HERE)).ok


def test_two_installs_starting_together_never_see_owner_json_half_written(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first install is held just after it opened its file, before it wrote a byte (where the old
    code left an empty owner.json for the second to read); the second must see no owner or a whole one."""
    machine = env.machine
    machine.mkdir(parents=True)
    first_opened, second_done = threading.Event(), threading.Event()
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: object, **kwargs: object) -> object:
        if threading.current_thread().name == "first":
            first_opened.set()
            second_done.wait(10)
        return real_fdopen(fd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "fdopen", fdopen)
    errors: dict[str, str] = {}

    def claim(me: str) -> None:
        try:
            ownership.claim_folder(machine, MACHINE, me)
        except BackupError as exc:
            errors[me] = str(exc)

    first = threading.Thread(target=claim, args=("a" * 32,), name="first")
    first.start()
    assert first_opened.wait(10)
    claim("b" * 32)
    second_done.set()
    first.join(10)
    assert len(errors) == 1, errors  # one owner, one refused
    assert all("belongs to another install" in e and "damaged" not in e for e in errors.values()), errors


# ---------------------------------------------------------------------------------------- adopt
def foreign_owner(machine: Path) -> None:
    """owner.json of another computer's install (its hash cannot be this computer's)."""
    machine.mkdir(parents=True, exist_ok=True)
    salt = "0" * 32
    doc = {"format": ownership.FORMAT, "install": "e" * 32, "host": "old-box", "salt": salt,
           "computer": ownership.computer_hash(salt, "no such computer")}  # fmt: skip
    (machine / ownership.OWNER).write_text(json.dumps(doc))


def test_adopt_without_a_terminal_or_yes_does_nothing_and_with_yes_makes_the_folder_this_installs(
    env: Env,
) -> None:
    foreign_owner(env.machine)
    refused = cli(env, "sync")
    assert refused.returncode == 1 and "opencode-backup adopt" in refused.stderr
    before = tree(env.dest)
    asked = cli(env, "adopt")
    lines = asked.stderr.strip().splitlines()
    assert asked.returncode == 2 and len(lines) == 1 and "--yes" in lines[0], asked.stderr
    assert tree(env.dest) == before
    done = cli(env, "adopt", "--yes")
    assert done.returncode == 0 and "adopted" in done.stdout, done.stderr
    assert cli(env, "sync").returncode == 0
    again = cli(env, "adopt")
    assert again.returncode == 0 and "nothing to adopt" in again.stdout


def test_adopt_mends_a_damaged_owner_json(env: Env) -> None:
    env.machine.mkdir(parents=True)
    (env.machine / ownership.OWNER).write_text('{"format": "opencode-session-backup-owner/1", "inst')
    refused = cli(env, "sync")
    assert refused.returncode == 1 and "damaged" in refused.stderr and "adopt" in refused.stderr
    done = cli(env, "adopt", "--yes")
    assert done.returncode == 0 and "adopted" in done.stdout, done.stderr
    assert cli(env, "sync").returncode == 0


def test_the_tray_offers_adopt_from_the_failure_and_adopts_on_confirmation(env: Env) -> None:
    foreign_owner(env.machine)
    failed = run_sync(ctx(env, "me", HERE))
    note = episode_note(
        FailingSince(datetime.now(UTC), failed.kind or FailureKind.FATAL, failed.error or "", 1)
    )
    assert "Adopt backup folder" in note.body and "another install" in note.title
    status = Status(ServiceState.FAILED, last_outcome=Outcome.FAILED, last_kind=FailureKind.FOREIGN)
    assert adoptable(status)
    assert "Adopt backup folder…" in presenter.tooltip(status, True, False, datetime.now(UTC))
    items = [i for i in menu_items(MenuView(configured=True, running=True, adoptable=True)) if i is not None]
    assert items[0].action is Action.ADOPT and items[0].label == "Adopt backup folder…"

    class Confirm:
        def __init__(self, ok: bool) -> None:
            self.ok, self.asked = ok, ""

        def confirm(self, title: str, text: str, ok: str, strong: bool = False) -> bool:
            self.asked = text
            return self.ok

    settings = type("S", (), {"machine_dir": env.machine})()
    no = Confirm(False)
    assert not flows.adopt(settings, no, env.tmp / "me", lambda: HERE).done  # type: ignore[arg-type]
    assert "old-box" in no.asked and run_sync(ctx(env, "me", HERE)).kind is FailureKind.FOREIGN
    outcome = flows.adopt(settings, Confirm(True), env.tmp / "me", lambda: HERE)  # type: ignore[arg-type]
    assert outcome.done, outcome
    assert run_sync(ctx(env, "me", HERE)).ok
    assert run_sync(ctx(env, "reinstalled", HERE)).ok  # adopted with this computer's hash


# ---------------------------------------------------------------------------------------- the seam
def readers(files: dict[str, str] | None = None, registry: str | None = None, ioreg: str = "") -> Readers:
    def read_file(path: str) -> str:
        if files is None or path not in files:
            raise FileNotFoundError(path)
        return files[path]

    def read_registry(key: str, name: str) -> str:
        assert (key, name) == (machine_id.WINDOWS_KEY, machine_id.WINDOWS_VALUE)
        if registry is None:
            raise OSError("access denied")
        return registry

    def run(argv: object) -> str:
        assert tuple(argv) == machine_id.MAC_COMMAND  # type: ignore[arg-type]
        return ioreg

    return Readers(read_file, read_registry, run)


IOREG = """+-o J314sAP  <class IOPlatformExpertDevice, id 0x100000218, registered, matched, active, busy 0>
    {
      "IOPlatformSerialNumber" = "XXXXXXXXXX"
      "IOPlatformUUID" = "4C4C4544-0051-3510-8058-B4C04F4E4B32"
      "model" = <"Mac14,9">
    }
"""


@pytest.mark.parametrize(
    ("platform", "given", "expected"),
    [
        (
            "linux",
            readers({"/etc/machine-id": "3D1219C7C4C5404AAA1F6D2A48ADFDA4\n"}),
            "3d1219c7c4c5404aaa1f6d2a48adfda4",
        ),
        ("linux", readers({"/etc/machine-id": "", "/var/lib/dbus/machine-id": "ab" * 16}), "ab" * 16),
        ("linux", readers({"/etc/machine-id": "uninitialized\n"}), None),
        ("linux", readers({"/etc/machine-id": "0" * 32}), None),
        ("linux", readers(), None),  # a container without one
        (
            "win32",
            readers(registry="{5E9F0D2C-8B1A-4C3D-9E2F-1A2B3C4D5E6F}"),
            "5e9f0d2c-8b1a-4c3d-9e2f-1a2b3c4d5e6f",
        ),
        (
            "win32",
            readers(registry="5e9f0d2c-8b1a-4c3d-9e2f-1a2b3c4d5e6f"),
            "5e9f0d2c-8b1a-4c3d-9e2f-1a2b3c4d5e6f",
        ),
        ("win32", readers(), None),
        ("darwin", readers(ioreg=IOREG), "4c4c4544-0051-3510-8058-b4c04f4e4b32"),
        ("darwin", readers(ioreg="no platform device"), None),
    ],
)
def test_each_systems_identity_is_read_through_the_seam(
    platform: str, given: Readers, expected: str | None
) -> None:
    assert machine_id.machine_identity(platform, given) == expected
    account = machine_id.this_account(platform, given, user=lambda: "alice")
    assert account == (None if expected is None else f"{expected}/alice")
