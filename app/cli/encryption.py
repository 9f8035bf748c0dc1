"""``opencode-backup encryption enable|disable|status|add-recipient|unlock|export-key``: backups only
you can read (age; see app.encryption and app.backup.rekey).

Exit codes: 0 done; 1 the re-encrypting backup failed (the switch is set: the next sync goes on), or
cancelled; 2 usage, a malformed or wrong key (nothing kept), no terminal to confirm and no ``--yes``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from app import encryption as enc
from app.backup.result import Outcome, SyncResult
from app.cli.common import (
    ALL,
    add_json_flag,
    add_settings_flags,
    confirm,
    emit,
    error,
    load_settings,
    say,
)
from app.cli.parser import COMMANDS
from app.cli.progress import shown
from app.cli.sync import backup_now
from app.config import Settings
from app.errors import UsageError
from app.wiring import key_store

ACTIONS = ("enable", "disable", "status", "add-recipient", "unlock", "export-key")
LOST = (
    "Without it, a backup made from this computer cannot be read once this computer is lost: nobody, "
    "not this app nor its makers, can open it."
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "encryption",
        help=COMMANDS["encryption"][1],
        description="Encrypt every file this install writes into the backup folder with age (readable with "
        "the standard age or rage tools too). 'enable' makes this install's key (kept in the system "
        "keyring) and a recovery key shown once, then re-encrypts the backup in place; 'disable' decrypts "
        "it again; 'add-recipient' encrypts to one more age public key; 'unlock' keeps a recovery key on a "
        "new computer (read from stdin, or --recovery-file); 'export-key' writes this install's keys as an "
        "age identity file.",
    )
    p.add_argument("action", choices=ACTIONS, help="what to do")
    p.add_argument("key", nargs="?", help="add-recipient: the age public key (age1…)")
    p.add_argument(
        "--recovery-file",
        type=Path,
        metavar="PATH",
        help="enable: write the recovery key to this new file (0600) instead of printing it; "
        "unlock: read it from this file",
    )
    p.add_argument("--output", type=Path, metavar="PATH", help="export-key: the new file to write (0600)")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_settings_flags(p, ALL)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.key is not None and args.action != "add-recipient":
        raise UsageError(f"'encryption {args.action}' takes no key argument")
    settings = load_settings(args, check=args.action in ("enable", "disable"))
    return {
        "enable": _enable,
        "disable": _disable,
        "status": _status,
        "add-recipient": _add_recipient,
        "unlock": _unlock,
        "export-key": _export,
    }[args.action](args, settings)


def _enable(args: argparse.Namespace, settings: Settings) -> int:
    keys = enc.new_keys()
    recipients, own_secret, recovery = keys.recipients, keys.own_secret, keys.recovery_secret
    if own_secret is None and settings.encryption:
        say("encryption is on already")
        return _status(args, settings)
    lines = []
    if recovery is None:
        lines.append(keys.reused)
    elif args.recovery_file is not None:
        enc.write_recovery(args.recovery_file, recovery)
        lines.append(f"The recovery key is written to {args.recovery_file} (readable by you only).")
        lines.append("Keep that file somewhere safe and apart from this computer. " + LOST)
    else:
        lines += [
            "RECOVERY KEY (shown once: store it now, in a password manager or on paper):",
            "",
            f"    {recovery}",
            "",
            LOST,
        ]
    text = "\n".join(lines)
    no_terminal = "no terminal to confirm; add --yes once the recovery key is stored"
    if args.yes:
        if not args.json:
            say(text)
    elif not confirm(text, "Have you stored the recovery key? Encrypt the backup now?", no_terminal):
        say("encryption not enabled; nothing was changed", err=True)
        return 1
    kept = enc.keep(recipients, own_secret)
    result = _resync(args, _switched(args, settings, on=True))
    data = {
        "enabled": True,
        "recipients": list(recipients.all),
        "key_kept_in": kept,
        "recovery_key": recovery if args.recovery_file is None else None,
        "recovery_file": str(args.recovery_file) if args.recovery_file else None,
        "sync": result,
    }
    warning = key_store().warning()
    if warning:
        say(f"warning: {warning}", err=True)
    return _finish(args, data, f"encryption is on; this install's key is kept in {kept}", result)


def _disable(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.encryption:
        emit(args, {"enabled": False}, "encryption is off already")
        return 0
    text = (
        "Turn encryption off? The backup's files are decrypted in place, and anyone who can read the "
        "backup folder (the cloud provider, people it is shared with) can read your sessions again."
    )
    no_terminal = "no terminal to confirm; add --yes to turn encryption off"
    if not args.yes and not confirm(text, "Decrypt the backup?", no_terminal):
        say("encryption left on; nothing was changed", err=True)
        return 1
    enc.disable()
    result = _resync(args, _switched(args, settings, on=False))
    return _finish(args, {"enabled": False, "sync": result}, "encryption is off", result)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    report = enc.status(settings)
    rows = [
        f"encryption: {'on (age)' if report.enabled else 'off'}",
        f"backup folder: {report.folder or 'no backup yet'}",
        f"this computer can decrypt it: {'yes' if report.can_decrypt else 'no'}",
        f"keys kept in: {report.kept_in}",
        *(f"recipient: {r}" for r in report.recipients),
    ]
    if report.warning:
        rows.append(f"warning: {report.warning}")
    emit(args, report.to_json(), "\n".join(rows))
    return 0


def _add_recipient(args: argparse.Namespace, settings: Settings) -> int:
    if not args.key:
        raise UsageError("give the age public key to add: encryption add-recipient age1…")
    recipients = enc.add_recipient(args.key)
    text = f"added; the next backup re-encrypts every file for {args.key.strip()}"
    if not settings.encryption:
        text += " (once encryption is on)"
    emit(args, {"recipients": list(recipients.all)}, text)
    return 0


def _unlock(args: argparse.Namespace, settings: Settings) -> int:
    if args.recovery_file is not None:
        try:
            text = args.recovery_file.read_text(encoding="utf-8", errors="replace")[: 1 << 16]
        except OSError as exc:
            raise UsageError(f"cannot read {args.recovery_file}: {exc.strerror}") from None
        where = str(args.recovery_file)
    else:
        if sys.stdin.isatty():  # not echoed, so the secret stays out of the terminal's scrollback
            try:
                text = getpass.getpass(
                    "paste the recovery key (AGE-SECRET-KEY-1…; not shown), then press Enter: "
                )
            except EOFError:
                text = ""
        else:
            text = sys.stdin.read(1 << 16)
        where = "the key given"
    done = enc.unlock(text, settings, where)
    said = f"unlocked: the key opens the backup; it is kept in {done.kept_in}"
    if not done.checked:
        said = (
            f"the key is kept in {done.kept_in}, but not checked against the backup: no encrypted file "
            "found on this computer yet"
        )
    emit(args, {"unlocked": True, "checked": done.checked, "key_kept_in": done.kept_in}, said)
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    if args.output is None:
        raise UsageError("say where: encryption export-key --output PATH")
    count = enc.export_identities(args.output)
    text = f"{count} key(s) written to {args.output} (readable by you only); 'age -d -i {args.output} FILE'"
    text += " decrypts a file of the backup"
    emit(args, {"file": str(args.output), "keys": count}, text)
    return 0


def _switched(args: argparse.Namespace, settings: Settings, *, on: bool) -> Settings:
    """The settings now the switch is set (the environment's OPENCODE_BACKUP_ENCRYPTION overrides it)."""
    now = load_settings(args, check=False)
    if now.encryption != on:
        raise UsageError(
            f"the setting is saved, but {now.origins.get('encryption')} overrides it; unset that first"
        )
    return now


def _resync(args: argparse.Namespace, settings: Settings) -> SyncResult | None:
    """The backup now, which re-encrypts what is there (None: there is no backup folder to do it in)."""
    if settings.machine_dir is None:
        return None
    with shown(args.json) as progress:
        return backup_now(settings, progress)


def _finish(args: argparse.Namespace, data: dict[str, Any], text: str, result: SyncResult | None) -> int:
    if result is not None and result.outcome is Outcome.FAILED:
        if args.json:
            emit(args, data, "")
        error(f"{text}, but the backup failed: {result.error} (the next backup goes on)")
        return 1
    if result is not None:
        text += f"\n{result.outcome.value}: {result.summary()}"
    emit(args, data, text)
    return 0
