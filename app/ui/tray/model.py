"""The tray's closed set of events and its menu, as data. Pure: no pystray, no threads.

Every thread that wants something of the tray (pystray's menu callbacks, the service's status listener,
a dialog flow, a signal handler) posts one of these events; only the tray's own thread acts on them.
The menu is computed from a :class:`MenuView` (a frozen snapshot the tray's thread publishes) by
:func:`menu_items`, which the pystray binding turns into pystray items.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app import config
from app.backup.result import Outcome as Result
from app.errors import FailureKind
from app.service.status import Status


class Action(enum.Enum):
    """What a menu item asks for."""

    ADOPT = "Adopt backup folder…"
    SYNC_NOW = "Sync now"
    STATUS = "Status…"
    RESTORE = "Restore…"
    BROWSE = "Browse backups…"
    TOGGLE_PAUSE = "Pause backups"
    OPEN_FOLDER = "Open backup folder"
    OPEN_LOG = "Open log"
    CHOOSE_FOLDER = "Choose backup folder…"
    TOGGLE_ENCRYPTION = "Encrypt backups…"
    TOGGLE_AUTOSTART = "Start at login"
    TOGGLE_AGENT_TOOLS = "Agent tools in opencode"
    QUIT = "Quit"


@dataclass(frozen=True)
class Menu:
    """A menu item was chosen (or the icon clicked: STATUS)."""

    action: Action


@dataclass(frozen=True)
class StatusChanged:
    """The service published a Status (None: no service runs now)."""

    status: Status | None


@dataclass(frozen=True)
class FolderChosen:
    """The Choose backup folder… flow saved a new folder: these settings are now in effect."""

    settings: config.Settings


@dataclass(frozen=True)
class EncryptionChanged:
    """The Encrypt backups… flow found the switch ``on`` (it set it, or the command line had): the menu
    follows. The running service needs nothing: it reads the keys and the switch again at each sync."""

    on: bool


@dataclass(frozen=True)
class FlowEnded:
    """A dialog flow ended."""


@dataclass(frozen=True)
class Stop:
    """Quit, a stop signal, or the tray's loop ended: stop everything."""


UiEvent = Menu | StatusChanged | FolderChosen | EncryptionChanged | FlowEnded | Stop


@dataclass(frozen=True)
class MenuView:
    """What the menu shows, as the tray's thread last published it."""

    configured: bool = False
    running: bool = False
    paused: bool = False
    busy: bool = False  # a dialog flow is under way: Restore…, Browse backups… and the like are greyed
    folder_exists: bool = False
    log_exists: bool = False
    autostart_supported: bool = False
    autostart_enabled: bool = False
    agent_tools_enabled: bool = False
    adoptable: bool = False  # backups fail because the folder is another install's: offer to adopt it
    encrypted: bool = False  # the encryption setting is on: offer to stop it


@dataclass(frozen=True)
class MenuItem:
    action: Action
    label: str
    enabled: bool = True
    checked: bool | None = None  # None: not a check item
    default: bool = False  # what a left click on the icon does


SEPARATOR = None


def menu_items(v: MenuView) -> tuple[MenuItem | None, ...]:
    """The menu for ``v``, top to bottom; None is a separator. With no backup folder yet, Choose backup
    folder… comes first and is the default; otherwise Status… is, and Encrypt backups… (Stop encrypting
    backups… when on) follows Choose backup folder…. While backups fail because the folder is another
    install's, Adopt backup folder… comes first."""
    out: list[MenuItem | None] = []
    if not v.configured:
        out += [MenuItem(Action.CHOOSE_FOLDER, Action.CHOOSE_FOLDER.value, default=True), SEPARATOR]
    elif v.adoptable:  # what the failure notification points at
        out += [MenuItem(Action.ADOPT, Action.ADOPT.value, enabled=not v.busy), SEPARATOR]
    out += [
        MenuItem(Action.SYNC_NOW, Action.SYNC_NOW.value, enabled=v.running),
        MenuItem(Action.STATUS, Action.STATUS.value, default=v.configured),
        MenuItem(Action.RESTORE, Action.RESTORE.value, enabled=v.configured and not v.busy),
        MenuItem(Action.BROWSE, Action.BROWSE.value, enabled=v.configured and not v.busy),
        MenuItem(Action.TOGGLE_PAUSE, "Resume backups" if v.paused else "Pause backups", enabled=v.running),
        SEPARATOR,
        MenuItem(Action.OPEN_FOLDER, Action.OPEN_FOLDER.value, enabled=v.folder_exists),
        MenuItem(Action.OPEN_LOG, Action.OPEN_LOG.value, enabled=v.log_exists),
    ]
    if v.configured:
        encryption = "Stop encrypting backups…" if v.encrypted else Action.TOGGLE_ENCRYPTION.value
        out += [
            MenuItem(Action.CHOOSE_FOLDER, Action.CHOOSE_FOLDER.value, enabled=not v.busy),
            MenuItem(Action.TOGGLE_ENCRYPTION, encryption, enabled=not v.busy),
        ]
    out += [
        MenuItem(
            Action.TOGGLE_AUTOSTART,
            Action.TOGGLE_AUTOSTART.value,
            enabled=v.autostart_supported,
            checked=v.autostart_enabled,
        ),
        MenuItem(Action.TOGGLE_AGENT_TOOLS, Action.TOGGLE_AGENT_TOOLS.value, checked=v.agent_tools_enabled),
        SEPARATOR,
        MenuItem(Action.QUIT, Action.QUIT.value),
    ]
    return tuple(out)


def adoptable(status: Status | None) -> bool:
    """The last backup failed because the folder is another install's: the menu offers to adopt it."""
    return (
        status is not None
        and status.last_outcome is Result.FAILED
        and status.last_kind is FailureKind.FOREIGN
    )


def menu_of(status: Status) -> tuple[bool, bool, bool, bool]:
    """What of a Status the menu shows (a change of it rebuilds the menu; other changes do not). The
    first sync to end and the first to back up are two: they make the log and the machine folder that
    Open log and Open backup folder open, greyed until they exist (a first sync at login may fail,
    before Google Drive is mounted, and a later one make the folder)."""
    return status.paused, adoptable(status), status.last_attempt is not None, status.last_backup is not None
