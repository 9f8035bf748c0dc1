"""The tray's conversations with the user: Restore…, Browse backups…, Choose backup folder…, Adopt
backup folder…, and Encrypt backups… / Stop encrypting backups…

Each runs on a flow thread of the tray (never on the tray's main thread), opens dialogs through
``app.ui.dialogs`` (child processes), and returns a :class:`Outcome` the tray turns into a message
and maybe a notification. The wording lives here, next to the decisions it describes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from app import config, paths, wiring
from app import encryption as enc
from app.backup import adopt as adopting
from app.backup import asof
from app.backup import backup_reader as br
from app.backup import restore as rs
from app.backup.catalog import SessionRow
from app.backup.history import history
from app.backup.ownership import Identity
from app.errors import BackupError, CryptError
from app.platform import drivefs
from app.service.events import RestoreNow
from app.service.runtime import Runtime
from app.transfer import rclone
from app.ui.dialog.protocol import Browsed

logger = logging.getLogger(__name__)


class Dialogs(Protocol):
    """What the flows need from app.ui.dialogs (tests may pass a scripted stand-in)."""

    def browse(
        self, backup_path: Path, machine: str, source: Path, opencode_db: Path | None
    ) -> Browsed | None: ...

    def pick_sessions(
        self, rows: Sequence[SessionRow], allow_replace: bool = True
    ) -> list[str] | Literal["replace_all"] | None: ...

    def confirm(self, title: str, text: str, ok: str, strong: bool = False) -> bool: ...

    def choose_folder(
        self, initial: Path | None, title: str, suggestions: Sequence[Path] = (), remotes: Sequence[str] = ()
    ) -> Path | str | None: ...

    def keep_recovery_key(self, text: str, key: str) -> bool: ...


@dataclass(frozen=True)
class Outcome:
    """What happened: ``done`` False means cancelled or refused (nothing changed)."""

    done: bool
    title: str
    text: str
    error: bool = False


CANCELLED = Outcome(False, "Restore cancelled", "Nothing was changed.")
NOT_ENCRYPTED = Outcome(False, "Backups not encrypted", "Nothing was changed.")
STILL_ENCRYPTED = Outcome(False, "Backups still encrypted", "Nothing was changed.")

RECOVERY_TEXT = (
    "Your backups will be encrypted. This computer keeps its own key. Below is the recovery key: if this "
    "computer is lost, only the recovery key opens the backup. Nobody else can open it, not even the "
    "makers of this app.\n\n"
    "Store it now, in a password manager or on paper, apart from this computer. It is shown only once."
)
STOP_TEXT = (
    "The backup's files are decrypted in place. Anyone who can read the backup folder (the cloud "
    "provider, people it is shared with) can then read your sessions.\n\n"
    "The keys stay on this computer."
)


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def confirmation(plan: rs.Plan, safety_dir: Path) -> tuple[str, str]:
    """The confirmation text and the OK button's label for a sessions plan. Pure."""
    act = plan.actionable
    adds = [i for i in act if i.action is rs.Action.ADD]
    replaces = [i for i in act if i.action is rs.Action.REPLACE]
    lines = []
    if adds:
        lines.append(f"Add {plural(len(adds), 'session')} to opencode.")
    if replaces:
        names = ", ".join(f"“{i.title or i.session_id}”" for i in replaces[:3])
        more = f" and {len(replaces) - 3} more" if len(replaces) > 3 else ""
        lines.append(
            f"Replace {plural(len(replaces), 'session')} in opencode with the backed-up version "
            f"({names}{more}); what changed in them since the backup is lost from opencode."
        )
    fails = [i for i in plan.items if i.action is rs.Action.FAIL]
    if fails:
        lines.append(f"{plural(len(fails), 'session')} cannot be restored: {fails[0].reason}")
    lines.append(f"Your current database is saved first to {safety_dir}.")
    if plan.notes:
        lines += plan.notes
    if adds and not replaces:
        ok = f"Add {plural(len(adds), 'session')}"
    else:
        ok = f"Restore {plural(len(act), 'session')}"
    return "\n\n".join(lines), ok


def replace_confirmation(plan: rs.Plan, safety_dir: Path) -> str:
    """The stronger confirmation for 'Replace everything'. Pure."""
    snap = plan.snapshot
    when = snap.path.name if snap is not None else "the newest snapshot"
    return (
        f"Replace opencode's whole database with the backup ({when}) plus "
        f"{plural(len(plan.actionable), 'newer session')}.\n\n"
        "Sessions that are not in the backup disappear from opencode. Your logins stay.\n\n"
        f"Your current database is saved first to {safety_dir}, so this can be undone by hand."
    )


def result_text(result: rs.RestoreResult) -> str:
    lines = [f"Restored {plural(len(result.restored), 'session')} into opencode."]
    if result.failed:
        lines.append(f"{plural(len(result.failed), 'session')} failed: {result.failed[0][1]}")
    if result.safety_copy is not None:
        lines.append(f"The database as it was before is saved at {result.safety_copy}.")
    lines.append("If opencode is open, restart it to see them in the session list.")
    return "\n\n".join(lines)


def restore(
    settings: config.Settings,
    dialogs: Dialogs,
    rows: Sequence[SessionRow],
    db: Path,
    apply: Callable[[rs.Plan, rs.RestoreRequest], rs.RestoreResult],
) -> Outcome:
    """Picker → plan → confirmation → ``apply`` (the tray hands the plan to the service as a job)."""
    assert settings.machine_dir is not None
    picked = dialogs.pick_sessions(rows, allow_replace=True)
    if not picked:
        return CANCELLED
    work_dir = paths.app_data_dir()
    safety_dir = work_dir / rs.SAFETY_DIR
    replace_all = picked == "replace_all"
    req = rs.RestoreRequest(
        machine_dir=settings.machine_dir,
        db=db,
        work_dir=work_dir,
        ids=() if replace_all else tuple(picked),
        replace_all=replace_all,
        seal=wiring.keys(),
    )
    try:
        plan = rs.make_plan(req)
    except BackupError as exc:
        return Outcome(False, "Cannot restore", str(exc), error=True)
    with plan:  # its decrypted copies go once it is applied or declined
        if not plan.actionable and not plan.snapshot:
            why = plan.items[0].reason if plan.items else "nothing to restore"
            return Outcome(False, "Nothing to restore", why, error=bool(plan.items))
        if replace_all:
            ok = dialogs.confirm(
                "Confirm replace everything",
                replace_confirmation(plan, safety_dir),
                "Replace everything",
                strong=True,
            )
        else:
            text, label = confirmation(plan, safety_dir)
            ok = dialogs.confirm("Confirm restore", text, label)
        if not ok:
            return CANCELLED
        return _applied(plan, req, apply)


def _applied(
    plan: rs.Plan, req: rs.RestoreRequest, apply: Callable[[rs.Plan, rs.RestoreRequest], rs.RestoreResult]
) -> Outcome:
    try:
        result = apply(plan, req)
    except BackupError as exc:
        return Outcome(False, "Restore failed", str(exc), error=True)
    logger.info("restore from the tray: %d restored, %d failed", len(result.restored), len(result.failed))
    title = "Restore finished" if result.ok else "Restore finished with errors"
    return Outcome(True, title, result_text(result), error=not result.ok)


def restore_on(rt: Runtime | None) -> Callable[[rs.Plan, rs.RestoreRequest], rs.RestoreResult]:
    """How a confirmed plan is applied: as a job of the running service (which lets a running sync end,
    holds the next ones, and backs up the result), or directly when none runs."""

    def apply(plan: rs.Plan, req: rs.RestoreRequest) -> rs.RestoreResult:
        if rt is None:
            return rs.apply_plan(plan, req)
        ask = RestoreNow(plan, req)
        rt.service.post(ask)
        return ask.done.result()  # the service completes it, or fails it when it stops

    return apply


def restore_version(
    settings: config.Settings,
    dialogs: Dialogs,
    db: Path,
    apply: Callable[[rs.Plan, rs.RestoreRequest], rs.RestoreResult],
) -> Outcome:
    """Browse backups → the version chosen → plan → the same confirmation as Restore… → ``apply``."""
    assert settings.backup_path is not None
    chosen = dialogs.browse(
        settings.backup_path, settings.machine_name, settings.source, settings.opencode_db
    )
    if chosen is None:
        return CANCELLED
    work_dir = paths.app_data_dir()
    try:
        machine_dir = br.safe_machine_dir(settings.backup_path, chosen.machine)
        h = history(machine_dir, chosen.session_id, work_dir, seal=wiring.keys())
        copy = next((c for c in h.copies if c.rel == chosen.copy), None)
        if copy is None:
            raise BackupError(
                f"that version of {chosen.session_id} is no longer in the backup (thinned since)"
            )
        req = asof.request_for(h, copy, db, work_dir)
        plan = rs.make_plan(req)
    except BackupError as exc:
        return Outcome(False, "Cannot restore", str(exc), error=True)
    with plan:  # its decrypted copies go once it is applied or declined
        if not plan.actionable:
            why = plan.items[0].reason if plan.items else "nothing to restore"
            return Outcome(False, "Nothing to restore", why, error=bool(plan.items))
        text, label = confirmation(plan, work_dir / rs.SAFETY_DIR)
        version = (
            f"Version {copy.number} of {len(h.copies)}, backed up {copy.when()}, "
            f"from machine folder {h.machine}."
        )
        if not dialogs.confirm("Confirm restore", f"{version}\n\n{text}", label):
            return CANCELLED
        return _applied(plan, req, apply)


def rclone_remotes() -> list[str]:
    """The user's rclone remotes by name ([] without rclone, or when it cannot tell)."""
    binary = rclone.find_binary()
    if binary is None:
        return []
    try:
        return sorted(rclone.list_remotes(binary))
    except BackupError as exc:
        logger.info("no rclone remotes to offer: %s", exc)
        return []


def adopt(settings: config.Settings, dialogs: Dialogs, state_dir: Path, identity: Identity) -> Outcome:
    """Whose the folder is → confirmation (Cancel the default) → this install's (app.backup.adopt)."""
    assert settings.machine_dir is not None
    machine_dir = settings.machine_dir
    try:
        plan = adopting.plan(machine_dir, state_dir)
    except BackupError as exc:
        return Outcome(False, "Cannot adopt the backup folder", str(exc), error=True)
    if not plan.needed:
        return Outcome(False, "Nothing to adopt", plan.text())
    if not dialogs.confirm("Adopt this backup folder?", plan.text().replace("\n", "\n\n"), "Adopt it"):
        return Outcome(False, "Backup folder not adopted", "Nothing was changed.")
    try:
        adopting.adopt(machine_dir, state_dir, identity)
    except BackupError as exc:
        return Outcome(False, "Adopt failed", str(exc), error=True)
    logger.info("adopted %s from the tray", machine_dir)
    return Outcome(True, "Backup folder adopted", f"{machine_dir} is this install's backup folder now.")


def choose_folder(
    settings: config.Settings | None,
    dialogs: Dialogs,
    drives: Callable[[], Sequence[Path]] = drivefs.google_drives,
    remotes: Callable[[], Sequence[str]] = rclone_remotes,
) -> tuple[Outcome, config.Settings | None]:
    """Folder picker → checks → ``backupPath`` written to our settings file. Returns the outcome and
    the settings now in effect (None when nothing changed). The Google Drive folders of every account
    (``drives``) are offered first, except the one in use, and the user's rclone ``remotes``."""
    initial = (
        settings.backup_path if settings and settings.backup_path and not settings.remote else Path.home()
    )
    while not initial.is_dir() and initial != initial.parent:
        initial = initial.parent
    current = settings.backup_path if settings else None
    offered = [folder for drive in drives() if (folder := drive / paths.DEST_FOLDER) != current]
    chosen = dialogs.choose_folder(initial, "Choose the backup folder", offered, remotes())
    if chosen is None:
        return Outcome(False, "Backup folder unchanged", "Nothing was changed."), None
    try:
        new = config.save_backup_path(chosen)
    except BackupError as exc:
        return Outcome(False, "Cannot use that folder", str(exc), error=True), None
    # As the settings write it: a remote's path is normalised (``\\`` → ``/``, no ``//`` or ``./``).
    remote = isinstance(chosen, str) and rclone.is_remote(chosen)
    wanted = rclone.parse_spec(str(chosen)).text if remote else str(Path(chosen).absolute())
    if new.destination_text != wanted:
        where = new.origins.get("backup_path", "")
        return (
            Outcome(
                False,
                "Backup folder saved, but not in effect",
                f"Saved to {new.config_file}, but the backup folder comes from {where}: "
                f"{new.destination_text}.",
                error=True,
            ),
            new,
        )
    return Outcome(True, "Backup folder chosen", f"Backups go to {new.machine_text}."), new


def encrypt(dialogs: Dialogs) -> tuple[Outcome, bool | None]:
    """New keys → the recovery key shown until the person has stored it (app.encryption.new_keys) → the
    keys kept and the switch on. Returns the outcome and the switch now in effect (None: unknown). The
    caller then asks the service for a backup: it re-encrypts the folder with the new keys."""
    try:
        on = config.load(check_destination=False).encryption
        keys = enc.new_keys()
    except (BackupError, CryptError) as exc:
        return Outcome(False, "Cannot encrypt backups", str(exc), error=True), None
    if on and keys.own_secret is None:  # as `encryption enable` says: the switch is on, the keys made
        return Outcome(False, "Backups are encrypted already", "Nothing was changed."), True
    if keys.recovery_secret is not None:
        stored = dialogs.keep_recovery_key(RECOVERY_TEXT, keys.recovery_secret)
    else:  # keys made before, or a new computer unlocked with the recovery key: the words say which
        stored = dialogs.confirm("Encrypt backups?", keys.reused, "Encrypt")
    if not stored:
        return NOT_ENCRYPTED, False
    try:
        kept = enc.keep(keys.recipients, keys.own_secret)
        now = config.load(check_destination=False)
    except (BackupError, CryptError) as exc:
        return Outcome(False, "Cannot encrypt backups", str(exc), error=True), None
    if not now.encryption:
        why = f"The setting is saved, but {now.origins.get('encryption')} overrides it: unset that first."
        return Outcome(False, "Encryption saved, but not in effect", why, error=True), False
    logger.info("encryption turned on from the tray; the key is kept in %s", kept)
    text = "The next backup, asked for now, encrypts the files already in the backup folder.\n\n"
    text += f"This computer's key is kept in {kept}."
    warning = wiring.key_store().warning()  # no keyring works here: the key is in a file
    if warning:
        text += f"\n\nNote: {warning}."
    return Outcome(True, "Backups are encrypted", text), True


def stop_encrypting(dialogs: Dialogs) -> tuple[Outcome, bool | None]:
    """A confirmation (Cancel the default) → the switch off; the backup the caller asks for then decrypts
    the folder in place. Returns the outcome and the switch now in effect (None: unknown)."""
    try:
        if not config.load(check_destination=False).encryption:
            return Outcome(False, "Backups are not encrypted", "Nothing was changed."), False
    except BackupError as exc:
        return Outcome(False, "Cannot stop encrypting backups", str(exc), error=True), None
    if not dialogs.confirm("Stop encrypting backups?", STOP_TEXT, "Decrypt backups"):
        return STILL_ENCRYPTED, True
    try:
        enc.disable()
        now = config.load(check_destination=False)
    except BackupError as exc:
        return Outcome(False, "Cannot stop encrypting backups", str(exc), error=True), None
    if now.encryption:
        why = f"The setting is saved, but {now.origins.get('encryption')} overrides it: unset that first."
        return Outcome(False, "Setting saved, but not in effect", why, error=True), True
    logger.info("encryption turned off from the tray")
    text = "The next backup, asked for now, decrypts the files in the backup folder."
    return Outcome(True, "Backups no longer encrypted", text), False
