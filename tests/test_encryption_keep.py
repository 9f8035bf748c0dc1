"""Keeping keys without losing one: an ``enable`` cut after keeping this computer's key but before its
recipients never takes that key for the recovery key when run again (only a key ``unlock`` kept is one);
a keyring that cannot be read is never written over; ``unlock`` says whether it could try the key on the
backup at all. In process, with the file the isolated home keeps keys in, or a fake keyring."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import cli, config
from app import encryption as enc
from app.crypt import age
from app.crypt.keys import IDENTITY_FILE, KeyStore, Recipients
from app.errors import CryptError
from app.wiring import key_store


def disk_full(self: KeyStore, recipients: Recipients) -> None:
    raise OSError(28, "No space left on device")


def test_an_enable_cut_before_its_recipients_were_kept_shows_a_new_recovery_key_when_run_again() -> None:
    first = enc.new_keys()
    assert first.own_secret is not None and first.recovery_secret is not None  # shown; the person stores it

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KeyStore, "save_recipients", disk_full)
        with pytest.raises(OSError):
            enc.keep(first.recipients, first.own_secret)
    assert first.own_secret in key_store().identities()  # this computer's key was kept before the cut

    again = enc.new_keys()
    assert again.recipients.recovery != first.recipients.own  # never its own key as the recovery key
    assert again.recovery_secret is not None and again.reused == ""  # a new one, shown to be stored
    enc.keep(again.recipients, again.own_secret)
    assert key_store().recipients() == again.recipients


def test_a_key_unlock_kept_stays_the_recovery_key_even_after_a_cut_enable(tmp_path: Path) -> None:
    recovery, recovery_public = age.new_identity()
    (tmp_path / "backup").mkdir()
    settings = config.load({"backupPath": str(tmp_path / "backup")}, check_destination=False)
    enc.unlock(recovery, settings, "the key given")
    first = enc.new_keys()
    assert first.recovery_secret is None and first.recipients.recovery == recovery_public
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KeyStore, "save_recipients", disk_full)
        with pytest.raises(OSError):
            enc.keep(first.recipients, first.own_secret)
    again = enc.new_keys()  # two keys held now: the one unlock kept is the recovery key, as before
    assert again.recovery_secret is None and again.recipients.recovery == recovery_public
    assert "unlocked with" in again.reused


class Ring:
    """A keyring backend (and the module that gives it) that keeps one entry; ``readable``: False, its
    reads fail (a locked or unreachable Secret Service) while writes still work."""

    priority = 5

    def __init__(self, value: str) -> None:
        self.value, self.readable = value, True

    def get_keyring(self) -> Ring:
        return self

    def get_password(self, service: str, user: str) -> str:
        if not self.readable:
            raise RuntimeError("org.freedesktop.DBus.Error.NoReply: did not receive a reply")
        return self.value

    def set_password(self, service: str, user: str, value: str) -> None:
        self.value = value


def test_a_keyring_that_cannot_be_read_is_never_written_over(tmp_path: Path) -> None:
    old, _ = age.new_identity()
    ring = Ring(old)
    store = KeyStore(tmp_path / "config", keyring=ring)
    assert store.identities() == (old,)
    ring.readable = False
    new, _ = age.new_identity()
    with pytest.raises(CryptError, match="cannot read the system keyring") as caught:
        store.add_identity(new)
    assert "\n" not in str(caught.value)
    assert ring.value == old and not (tmp_path / "config" / IDENTITY_FILE).exists()  # nothing changed
    ring.readable = True
    assert store.add_identity(new) == "the system keyring"
    assert store.identities() == (old, new)


def unlock(capsys: pytest.CaptureFixture[str], backup: Path, key_file: Path) -> str:
    code = cli.main(
        ["encryption", "unlock", "--recovery-file", str(key_file), "--backup-path", str(backup),
         "--machine-name", "box"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out.strip()


def test_unlock_says_whether_the_key_was_tried_on_the_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret, public = age.new_identity()
    key_file = tmp_path / "recovery.txt"
    key_file.write_text(secret + "\n")
    empty = tmp_path / "mirror"  # a remote's mirror on a new computer: nothing in it yet
    empty.mkdir()
    said = unlock(capsys, empty, key_file)
    assert said.count("\n") == 0 and "not checked against the backup" in said
    assert "no encrypted file found on this computer yet" in said and "opens" not in said

    backup = tmp_path / "backup"
    session = backup / "other" / "sessions" / "proj" / "ses_a.json"
    session.parent.mkdir(parents=True)
    session.write_bytes(age.encrypt(b"{}", [public]))
    said = unlock(capsys, backup, key_file)
    assert said.count("\n") == 0 and "opens the backup" in said and "not checked" not in said
