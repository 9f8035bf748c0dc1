"""From settings to the objects that do the work: the one place the faces (CLI, tray, agent tools) get a
sync context or a running service from. Below every face, above the engine and the service."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from app import config, paths
from app.backup.sync import SyncContext
from app.crypt.age import CryptError
from app.crypt.keys import KeyStore
from app.crypt.seal import Seal
from app.errors import ConfigError, FailureKind, SyncFailed
from app.platform import machine_id
from app.service.notifier import Notifier
from app.service.runtime import Runtime
from app.service.service import Listener, Timing
from app.transfer import make_engine


def context_for(settings: config.Settings) -> SyncContext:
    """The SyncContext of ``settings`` (ConfigError when no backup folder is set)."""
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
        seen = (*self._store.signature(), *_signature(self._settings.config_file))
        if self._seal is None or seen != self._seen:
            try:
                if self._seal is not None:  # changed since: the switch may have been turned
                    self._settings = replace(
                        self._settings, encryption=config.load(check_destination=False).encryption
                    )
                self._seal = seal_for(self._settings, self._store)
            except ConfigError as exc:
                raise SyncFailed(str(exc), FailureKind.FATAL) from None
            self._seen = seen
        return self._seal


def _signature(path: Path) -> tuple[int, ...]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


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
        context_for(settings),
        timing=Timing(delay=settings.sync_delay_seconds, interval=settings.min_interval_seconds),
        notifier=notifier,
        listeners=listeners,
    )
