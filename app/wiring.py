"""From settings to the objects that do the work: the one place the faces (CLI, tray, agent tools) get a
sync context or a running service from. Below every face, above the engine and the service."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from app import config, paths
from app.backup import manifest as mf
from app.backup import search
from app.backup.backup_reader import machine_name, safe_machine_dir
from app.backup.progress import Sink, nowhere
from app.backup.remote.site import RemoteSite
from app.backup.remote.view import Parts, view
from app.backup.result import SyncResult
from app.backup.state import PERSON_WAIT, sync_lock
from app.backup.sync import SyncContext, SyncOptions, run_sync, run_upload
from app.config_destination import rclone_binary
from app.crypt.keys import KeyStore
from app.crypt.seal import Seal
from app.errors import ConfigError, CryptError, FailureKind, SyncFailed
from app.fsutil import stat_signature
from app.platform import conditions, machine_id
from app.service.notifier import Notifier
from app.service.runtime import Runtime
from app.service.service import Listener, Timing
from app.transfer import make_engine, rclone


def context_for(settings: config.Settings, *, resident: bool = False) -> SyncContext:
    """The SyncContext of ``settings`` (ConfigError when no backup folder is set); ``resident``: a remote
    keeps one rclone running between uploads (the live service's)."""
    if settings.backup_path is None:
        raise ConfigError(config.not_configured_message(settings))
    return SyncContext(
        backup_path=settings.backup_path,
        machine=settings.machine_name,
        source=settings.source,
        opencode_db=settings.opencode_db,
        staging_dir=paths.app_data_dir() / "staging" / settings.machine_name,
        state_dir=paths.app_state_dir(),
        engine=make_engine(settings.engine),
        snapshot_every_hours=settings.snapshot_every_hours,
        keep_snapshots=settings.keep_snapshots,
        keep_versions_days=settings.keep_versions_days,
        identity=machine_id.account_once(paths.current_platform()),
        seal=SettingsSeal(settings),
        remote=site_for(settings, resident=resident),
    )


def sync_once(
    settings: config.Settings,
    options: SyncOptions | None = None,
    *,
    progress: Sink = nowhere,
    cancel: threading.Event | None = None,
) -> SyncResult:
    """One sync of ``settings`` in this process (a command's, an agent tool's), with what it holds given
    back after (a remote's writer lease, its ledger), then the search index let follow what it backed up
    (the service's own syncs: its worker). Runs on the calling thread."""
    ctx = context_for(settings)
    ctx = dataclasses.replace(ctx, progress=progress, cancel=cancel or ctx.cancel)
    try:
        result = run_sync(ctx, options)
    finally:
        if ctx.remote is not None:
            ctx.remote.release()
    if result.backed_up:
        search.after_sync(ctx.backup_path, settings.machine_name, keys())
    return result


def site_for(settings: config.Settings, *, resident: bool = False) -> RemoteSite | None:
    """The rclone remote of ``settings`` (None: the backup is a folder); ConfigError (how to install it)
    without rclone."""
    spec = settings.remote
    if spec is None:
        return None
    binary = rclone_binary(spec, settings.destination_from)
    client = rclone.Rclone(binary, spec, rclone.Options(settings.upload_bandwidth_limit))
    return RemoteSite(spec, client, rclone.cache_dir(spec), held=_held(settings), resident=resident)


def _held(settings: config.Settings) -> Callable[[], str | None]:
    """Why uploads wait now, under the settings' switches (asked before each upload, on the worker)."""
    if not (settings.upload_only_unmetered or settings.upload_not_on_battery):
        return lambda: None
    platform, readers = paths.current_platform(), conditions.system_readers()
    return lambda: conditions.held_back(
        platform,
        readers,
        only_unmetered=settings.upload_only_unmetered,
        not_on_battery=settings.upload_not_on_battery,
    )


def key_store() -> KeyStore:
    """This install's keys (the OS keyring, and the app's config folder)."""
    return KeyStore(paths.app_config_dir())


class SettingsSeal:
    """The seal a sync uses: :func:`seal_for` the settings, made again when this install's keys or the
    settings file change (``encryption enable`` run while the service is running), so a service never
    writes with the keys it started with. Asked once at the start of each sync (two or three stats)."""

    def __init__(self, settings: config.Settings) -> None:
        self._settings = settings
        self._store = key_store()
        self._seen: tuple[int, ...] | None = None
        self._seal: Seal | None = None

    def current(self) -> Seal:
        seen = (*self._store.signature(), *stat_signature(self._settings.config_file))
        if self._seal is None or seen != self._seen:
            try:
                if self._seal is not None:  # changed since: the switch may have been turned
                    self._settings = dataclasses.replace(
                        self._settings, encryption=config.load(check_destination=False).encryption
                    )
                self._seal = seal_for(self._settings, self._store)
            except ConfigError as exc:
                raise SyncFailed(str(exc), FailureKind.FATAL) from None
            self._seen = seen
        return self._seal


def keys() -> Seal:
    """This install's keys, to read a backup (list, restore, verify, repair): an encrypted file is opened
    with them; a plain one is read as it is where the folder is not wholly encrypted."""
    return Seal((), key_store().identities)


def seal_for(settings: config.Settings, store: KeyStore | None = None) -> Seal:
    """What a sync encrypts to (nothing unless ``encryption`` is on) and the keys every reader opens an
    encrypted backup with (loaded when first needed). ConfigError when encryption is on without a key."""
    store = key_store() if store is None else store
    recipients: tuple[str, ...] = ()
    if settings.encryption:
        try:
            mine = store.recipients()
        except CryptError as exc:
            raise ConfigError(str(exc)) from None
        if mine is None:
            raise ConfigError(
                "encryption is on but this install has no key yet: run 'opencode-backup encryption enable'"
            )
        recipients = mine.all
    return Seal(recipients, store.identities)


def runtime_for(
    settings: config.Settings, *, notifier: Notifier | None = None, listeners: Iterable[Listener] = ()
) -> Runtime:
    """A (not yet started) service for ``settings``, with its timing from the settings."""
    return Runtime(
        context_for(settings, resident=True),
        timing=Timing(delay=settings.sync_delay_seconds, interval=settings.min_interval_seconds),
        notifier=notifier,
        listeners=listeners,
    )


@contextlib.contextmanager
def reading(
    settings: config.Settings, machine: str | None = None, parts: Parts = Parts.INDEX, *, fresh: bool = False
) -> Iterator[Path]:
    """The machine folder of ``machine`` (default: this one) to read, checked as a backup folder is: in a
    folder, its own; on a remote, this machine's mirror (the newest state there is: only this install
    writes it), unless ``fresh`` asks for the remote itself (verify), or a download of ``parts`` of the
    remote's folder into the cache (another machine's, or this one's before it has a mirror), removed
    afterwards. The one way the commands that read a backup reach a remote. ConfigError when no backup is
    set, BackupDamaged when there is no such machine folder."""
    if settings.backup_path is None:
        raise ConfigError(config.not_configured_message(settings))
    machine = machine or settings.machine_name
    mirror_has_it = (settings.backup_path / machine / mf.MANIFEST).is_file()
    if settings.remote is None or (machine == settings.machine_name and mirror_has_it and not fresh):
        yield safe_machine_dir(settings.backup_path, machine)
        return
    site = site_for(settings)
    assert site is not None
    try:
        with view(site, machine_name(machine), parts) as folder:
            yield folder
    finally:
        site.close()


def mirror_ready(settings: config.Settings) -> None:
    """On a remote: the mirror of this machine's folder filled from the remote when it has none, whoever
    owns it (``adopt`` and ``repair`` read it before they decide). Nothing for a folder."""
    site = site_for(settings)
    if site is None:
        return
    try:
        with sync_lock(paths.app_state_dir(), wait=PERSON_WAIT):
            site.ready(settings.machine_name, threading.Event())
    finally:
        site.close()


def upload_mended(settings: config.Settings, *, compare: bool) -> SyncResult | None:
    """On a remote: put this machine's mended mirror there now (``compare``: file by file, after a repair);
    the result (None for a folder)."""
    ctx = context_for(settings)
    if ctx.remote is None:
        return None
    try:
        if compare:
            ctx.remote.compare_next(settings.machine_name)
        return run_upload(ctx)
    finally:
        ctx.remote.release()
