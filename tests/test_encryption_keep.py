"""Keeping keys without losing one: an ``enable`` cut after keeping this computer's key but before its
recipients never takes that key for the recovery key when run again (only a key ``unlock`` kept is one).
In process, with the file the isolated home keeps keys in."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import config
from app import encryption as enc
from app.crypt import age
from app.crypt.keys import KeyStore, Recipients
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
