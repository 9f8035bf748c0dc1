"""Linux and other XDG desktops: ``$XDG_CONFIG_HOME/autostart/opencode-session-backup.desktop``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from app import APP_NAME
from app.platform.autostart_files import FileEntry

FILE_NAME = f"{APP_NAME}.desktop"

# Desktop Entry spec, "The Exec key": an argument holding any of these must be quoted.
_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")
# Inside double quotes these four are escaped with a backslash.
_ESCAPE_IN_QUOTES = frozenset('"`$\\')
# The string-value escapes applied to the whole value after quoting (spec: "applied before the quoting
# rule" when reading, so after it when writing).
_VALUE_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def autostart_dir(env: Mapping[str, str], home: Path) -> Path:
    """``$XDG_CONFIG_HOME/autostart`` when that is an absolute path, else ``~/.config/autostart``."""
    config = env.get("XDG_CONFIG_HOME", "")
    base = Path(config) if config and Path(config).is_absolute() else home / ".config"
    return base / "autostart"


def exec_argument(arg: str) -> str:
    """One argv element as the Exec key must spell it (quoted when needed, ``%`` doubled, escaped)."""
    arg = arg.replace("%", "%%")
    if arg and not _RESERVED.intersection(arg):
        quoted = arg
    else:
        quoted = '"' + "".join("\\" + c if c in _ESCAPE_IN_QUOTES else c for c in arg) + '"'
    return "".join(_VALUE_ESCAPES.get(c, c) for c in quoted)


def exec_line(argv: Sequence[str]) -> str:
    """The Exec value that makes a desktop launcher run exactly ``argv``."""
    return " ".join(exec_argument(a) for a in argv)


def desktop_entry(argv: Sequence[str], icon: str) -> str:
    """The autostart ``.desktop`` file's text; it passes ``desktop-file-validate``."""
    icon_value = "".join(_VALUE_ESCAPES.get(c, c) for c in icon)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Version=1.0\n"
        "Name=opencode session backup\n"
        "Comment=Back up opencode sessions continuously (tray icon)\n"
        f"Exec={exec_line(argv)}\n"
        f"Icon={icon_value}\n"
        "Terminal=false\n"
        "Categories=Utility;\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


class XdgAutostart(FileEntry):
    """An XDG autostart entry in ``folder``; enabled means the file exists."""

    def __init__(self, folder: Path, command: Sequence[str], icon: str) -> None:
        super().__init__(folder / FILE_NAME, command)
        self.icon = icon

    def content(self) -> bytes:
        return desktop_entry(self._command, self.icon).encode("utf-8")
