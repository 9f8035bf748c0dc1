"""Where things are: opencode's data and config folders, this app's own folders, Google Drive.

Nothing here creates, writes or caches anything; every function only computes or looks. The system is
asked of :mod:`app.host` once, in :func:`current_platform`; everything else takes ``platform`` and the
environment as arguments so tests can play Windows or macOS on Linux.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_data_path, user_log_path, user_state_path

from app import APP_NAME
from app.host import HOST

DEST_FOLDER = "opencode-sessions"
CONFIG_FILE_NAME = "session-backup.json"

# The name Google Drive for desktop gives the "My Drive" folder, per display language.
# Each one was seen in real paths (G:\<name>\...) on Windows installs.
MY_DRIVE_NAMES: tuple[str, ...] = (
    "My Drive",  # English
    "Mi unidad",  # Spanish
    "Meine Ablage",  # German
    "Mon Drive",  # French
    "Il mio Drive",  # Italian
    "Meu Drive",  # Portuguese (Brazil)
    "O meu disco",  # Portuguese (Portugal)
    "Mijn Drive",  # Dutch
    "Mój dysk",  # Polish
    "Můj disk",  # Czech
    "Min enhet",  # Swedish
    "Mit drev",  # Danish
    "Min disk",  # Norwegian
    "Oma Drive",  # Finnish
    "Saját meghajtó",  # Hungarian
    "Drive'ım",  # Turkish
    "Мой диск",  # Russian
    "Мій диск",  # Ukrainian
    "Drive Saya",  # Indonesian
    "マイドライブ",  # Japanese
    "내 드라이브",  # Korean
    "我的云端硬盘",  # Chinese (Simplified)
    "我的雲端硬碟",  # Chinese (Traditional)
)


def current_platform() -> str:
    """The running platform as ``sys.platform`` spells it (:data:`app.host.HOST`)."""
    return HOST.platform


def home_dir(env: Mapping[str, str], platform: str) -> Path:
    """The user's home folder as opencode (Node's ``os.homedir()``) sees it.

    Windows: ``%USERPROFILE%``; elsewhere ``$HOME``; when unset, Python's own guess.
    """
    name = "USERPROFILE" if platform == "win32" else "HOME"
    value = env.get(name, "")
    return Path(value) if value else Path.home()


def _xdg(env: Mapping[str, str], name: str, home: Path, *default: str) -> Path:
    """``$name`` when set to an absolute path (XDG rule: relative values are ignored), else home/default."""
    value = env.get(name, "")
    if value and Path(value).is_absolute():
        return Path(value)
    return home.joinpath(*default)


def opencode_data_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """opencode's data folder: ``$XDG_DATA_HOME/opencode``, else ``~/.local/share/opencode``, on every OS."""
    env = os.environ if env is None else env
    home = home_dir(env, platform or current_platform())
    return _xdg(env, "XDG_DATA_HOME", home, ".local", "share") / "opencode"


def opencode_config_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """opencode's config folder: ``$OPENCODE_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/opencode``,
    else ``~/.config/opencode``, on every OS. A relative ``OPENCODE_CONFIG_DIR`` is taken from the
    current directory."""
    env = os.environ if env is None else env
    explicit = env.get("OPENCODE_CONFIG_DIR", "")
    if explicit:
        return Path(os.path.abspath(explicit))
    home = home_dir(env, platform or current_platform())
    return _xdg(env, "XDG_CONFIG_HOME", home, ".config") / "opencode"


def opencode2_config_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path | None:
    """A separate config folder of opencode 2.0's, when there is one: ``$OPENCODE2_CONFIG_DIR``, else
    ``$XDG_CONFIG_HOME/opencode2`` (where side-by-side installs keep 2.0's config; 2.0 itself reads
    :func:`opencode_config_dir`). None when it does not exist or is that folder."""
    env = os.environ if env is None else env
    explicit = env.get("OPENCODE2_CONFIG_DIR", "")
    home = home_dir(env, platform or current_platform())
    folder = (
        Path(os.path.abspath(explicit))
        if explicit
        else _xdg(env, "XDG_CONFIG_HOME", home, ".config") / "opencode2"
    )
    if not folder.is_dir() or folder == opencode_config_dir(env, platform):
        return None
    return folder


def default_config_file(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """``session-backup.json`` in opencode's config folder (whether or not it exists)."""
    return opencode_config_dir(env, platform) / CONFIG_FILE_NAME


def app_data_dir() -> Path:
    """This app's own data folder (staging lives here). Not created."""
    return user_data_path(APP_NAME, appauthor=False)


def app_config_dir() -> Path:
    """This app's own config folder, where its keys are (not opencode's config folder, which people keep
    in dotfile repositories). Not created."""
    return user_config_path(APP_NAME, appauthor=False)


def app_state_dir() -> Path:
    """This app's state folder (last status, locks). Not created."""
    return user_state_path(APP_NAME, appauthor=False)


def app_cache_dir() -> Path:
    """This app's cache folder (a remote backup's local mirror, the search index: what can be made again
    from the backup). Not created."""
    return user_cache_path(APP_NAME, appauthor=False)


def app_log_dir() -> Path:
    """This app's log folder. Not created."""
    return user_log_path(APP_NAME, appauthor=False)


def windows_drive_roots() -> list[Path]:
    """``D:\\`` to ``Z:\\`` (A and B are floppies, C the system) — candidates, not checked here."""
    return [Path(f"{letter}:\\") for letter in "DEFGHIJKLMNOPQRSTUVWXYZ"]


def google_drives(
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    drive_roots: Sequence[Path] | None = None,
    stream_roots: Sequence[Path] = (),
) -> list[Path]:
    """Every Google Drive "My Drive" folder on this computer (one per account), in order of preference.

    Windows: the drive roots (``drive_roots``, default D: to Z:) holding a "My Drive" folder under any of
    its localized names, then the roots Drive for desktop says it streams to (``stream_roots``: a drive
    letter or, with "stream to a folder", any folder; read from its settings by ``app.platform.drivefs``),
    then ``%USERPROFILE%\\My Drive`` (Drive's mirror mode). macOS: ``~/Library/CloudStorage/GoogleDrive-*/My
    Drive`` (localized names too), accounts in name order, then ``stream_roots`` (the mount points of Drive
    versions before macOS's File Provider). Linux and others: none. Only existing folders; nothing created.
    """
    platform = platform or current_platform()
    env = os.environ if env is None else env
    if platform == "win32":
        roots = list(windows_drive_roots() if drive_roots is None else drive_roots)
        roots += [*stream_roots, home_dir(env, platform)]
    elif platform == "darwin":
        cloud = home_dir(env, platform) / "Library" / "CloudStorage"
        roots = [*sorted(_subdirs(cloud, lambda name: name.startswith("GoogleDrive-"))), *stream_roots]
    else:
        return []
    found: list[Path] = []
    for root in roots:
        my_drive = find_my_drive(root)
        if my_drive is not None and my_drive not in found:
            found.append(my_drive)
    return found


def find_my_drive(root: Path) -> Path | None:
    """The "My Drive" folder directly inside ``root`` (any localized name, any case), or None."""
    wanted = {_fold(name) for name in MY_DRIVE_NAMES}
    matches = sorted(_subdirs(root, lambda name: _fold(name) in wanted))
    return matches[0] if matches else None


def _fold(name: str) -> str:
    # macOS hands out decomposed (NFD) names and both Drive and Windows ignore case.
    return unicodedata.normalize("NFC", name).casefold()


def _subdirs(folder: Path, accept: Callable[[str], bool]) -> list[Path]:
    """Sub-folders of ``folder`` whose name passes ``accept``; [] when it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            return [Path(e.path) for e in it if accept(e.name) and _is_dir(e)]
    except OSError:  # missing, not a folder, unreadable, drive letter with no disc
        return []


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
