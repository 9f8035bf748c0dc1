"""From settings to the objects that do the work: the one place the faces (CLI, tray, agent tools) get a
sync context or a running service from. Below every face, above the engine and the service."""

from __future__ import annotations

from collections.abc import Iterable

from app import config, paths
from app.backup.sync import SyncContext
from app.errors import ConfigError
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
    )


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
