"""Windows: a value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.

The registry is reached through :class:`WinReg`, the subset of the ``winreg`` module used here, so
tests pass a fake and this module never imports ``winreg`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PureWindowsPath
from typing import Any, Protocol

from app import APP_NAME
from app.platform.autostart_base import AutostartError

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
VALUE_NAME = APP_NAME

# A registry key handle (winreg.HKEYType or an int constant); opaque to this module.
Key = Any


class WinReg(Protocol):
    """The functions and constants of ``winreg`` this backend calls (same names and signatures)."""

    HKEY_CURRENT_USER: int
    KEY_READ: int
    KEY_SET_VALUE: int
    REG_SZ: int

    def OpenKey(self, key: Key, sub_key: str, reserved: int = 0, access: int = ...) -> Key: ...
    def CreateKey(self, key: Key, sub_key: str) -> Key: ...
    def SetValueEx(self, key: Key, value_name: str, reserved: int, type: int, value: str) -> None: ...
    def DeleteValue(self, key: Key, value: str) -> None: ...
    def QueryValueEx(self, key: Key, name: str) -> tuple[Any, int]: ...
    def CloseKey(self, hkey: Key) -> None: ...


def quote_argument(arg: str) -> str:
    """One argument as the Microsoft C runtime's ``CommandLineToArgvW`` reads it back unchanged."""
    if arg and not any(c in arg for c in ' \t\n\v"'):
        return arg
    out: list[str] = ['"']
    backslashes = 0
    for c in arg:
        if c == "\\":
            backslashes += 1
            continue
        if c == '"':  # backslashes before a quote are doubled, and the quote itself escaped
            out.append("\\" * (2 * backslashes + 1) + '"')
        else:
            out.append("\\" * backslashes + c)
        backslashes = 0
    out.append("\\" * (2 * backslashes) + '"')  # before the closing quote they are doubled too
    return "".join(out)


def command_line(argv: Sequence[str]) -> str:
    """The whole command line for the Run value."""
    return " ".join(quote_argument(a) for a in argv)


class RunKeyAutostart:
    """The ``Run`` value named after the app; enabled means the value exists."""

    supported = True

    def __init__(self, winreg: WinReg, command: Sequence[str]) -> None:
        self.reg = winreg
        self._command = list(command)

    @property
    def location(self) -> str:
        return f"HKCU\\{RUN_KEY}\\{VALUE_NAME}"

    @property
    def command(self) -> list[str]:
        return list(self._command)

    def is_enabled(self) -> bool:
        try:
            key = self.reg.OpenKey(self.reg.HKEY_CURRENT_USER, RUN_KEY, 0, self.reg.KEY_READ)
        except FileNotFoundError:
            return False
        try:
            self.reg.QueryValueEx(key, VALUE_NAME)
        except FileNotFoundError:
            return False
        finally:
            self.reg.CloseKey(key)
        return True

    def enable(self) -> None:
        program = self._command[0] if self._command else ""
        if not PureWindowsPath(program).is_absolute():
            # Windows starts the Run value at login from another current directory: a relative name fails
            raise AutostartError(
                f"the login entry must name its program by an absolute path, not {program!r}"
            )
        try:
            key = self.reg.CreateKey(self.reg.HKEY_CURRENT_USER, RUN_KEY)
            try:
                self.reg.SetValueEx(key, VALUE_NAME, 0, self.reg.REG_SZ, command_line(self._command))
            finally:
                self.reg.CloseKey(key)
        except OSError as exc:
            raise AutostartError(f"cannot write the registry value {self.location}: {exc}") from exc

    def disable(self) -> None:
        try:
            key = self.reg.OpenKey(self.reg.HKEY_CURRENT_USER, RUN_KEY, 0, self.reg.KEY_SET_VALUE)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AutostartError(f"cannot open the registry key HKCU\\{RUN_KEY}: {exc}") from exc
        try:
            self.reg.DeleteValue(key, VALUE_NAME)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise AutostartError(f"cannot remove the registry value {self.location}: {exc}") from exc
        finally:
            self.reg.CloseKey(key)
