"""This computer's stable identity, as the system keeps it: Linux's ``/etc/machine-id`` (systemd, or
D-Bus's copy), the Windows ``MachineGuid``, the macOS hardware UUID.

It outlives this app's install id: reinstalling the app, wiping its state folder or rebuilding a user
profile keeps it, so an install can tell "this computer, reinstalled" from "another computer with the
same name" (:mod:`app.backup.ownership`). The raw value never leaves this process: its only caller keeps
a salted hash of it. Each system's branch reads through :class:`Readers`, so tests run all three with
recorded values and mypy checks them on every platform; ``platform`` is passed in by the factory that
builds the sync context (this module never reads ``sys.platform``).
"""

from __future__ import annotations

import functools
import getpass
import importlib
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

LINUX_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
WINDOWS_KEY = r"SOFTWARE\Microsoft\Cryptography"
WINDOWS_VALUE = "MachineGuid"
MAC_COMMAND = ("/usr/sbin/ioreg", "-rd1", "-c", "IOPlatformExpertDevice")
_MAC_UUID = re.compile(r'"IOPlatformUUID"\s*=\s*"([0-9A-Fa-f-]{36})"')
_PLAUSIBLE = re.compile(r"^[0-9a-f-]{16,64}$")  # 32 hex digits (Linux), a GUID or UUID with dashes


@dataclass(frozen=True)
class Readers:
    """How the identity is read: a file's text (Linux), a value under ``HKEY_LOCAL_MACHINE`` (Windows),
    a command's output (macOS). Each raises OSError (or a subprocess error) when it cannot."""

    read_file: Callable[[str], str]
    read_registry: Callable[[str, str], str]
    run: Callable[[Sequence[str]], str]


def machine_identity(platform: str, readers: Readers) -> str | None:
    """The system's identity of this computer, lower-cased; None where there is none to read (a
    container without a machine-id, systemd's first boot, a locked-down registry)."""
    try:
        if platform == "win32":
            raw = readers.read_registry(WINDOWS_KEY, WINDOWS_VALUE)
        elif platform == "darwin":
            found = _MAC_UUID.search(readers.run(MAC_COMMAND))
            raw = found[1] if found else ""
        else:  # Linux and the BSDs with systemd or D-Bus
            raw = next((text for text in map(_text_or_blank(readers), LINUX_FILES) if text.strip()), "")
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    value = raw.strip().strip("{}").lower()
    if not _PLAUSIBLE.match(value) or not value.strip("0-"):  # "uninitialized", all zeros
        return None
    return value


def _text_or_blank(readers: Readers) -> Callable[[str], str]:
    def read(path: str) -> str:
        try:
            return readers.read_file(path)
        except OSError:
            return ""

    return read


def this_account(platform: str, readers: Readers, user: Callable[[], str] = getpass.getuser) -> str | None:
    """This computer and this user account on it: what an install's backup folder belongs to (two
    accounts on one computer are two writers, never one). None when the computer has no identity."""
    machine = machine_identity(platform, readers)
    if machine is None:
        return None
    try:
        name = user()
    except (OSError, KeyError, ImportError):  # no login name in the environment nor the password file
        name = ""
    return f"{machine}/{name}"


def account_once(platform: str) -> Callable[[], str | None]:
    """:func:`this_account` with the real readers, read when first asked and kept (on macOS it starts
    ``ioreg``; a warm sync into its own folder never asks)."""
    return functools.cache(lambda: this_account(platform, system_readers()))


def system_readers() -> Readers:
    """The real readers (each imported or started only when its system's branch asks)."""
    return Readers(read_file=_read_file, read_registry=_read_registry, run=_run)


def _read_file(path: str) -> str:
    return Path(path).read_text(encoding="ascii", errors="replace")[:256]


class _WinReg(Protocol):
    """The part of ``winreg`` read here (imported by name: its stubs exist for win32 only)."""

    HKEY_LOCAL_MACHINE: int
    KEY_READ: int
    KEY_WOW64_64KEY: int

    def OpenKey(self, key: Any, sub_key: str, reserved: int = 0, access: int = ...) -> Any: ...
    def QueryValueEx(self, key: Any, name: str) -> tuple[Any, int]: ...


def _read_registry(key: str, name: str) -> str:
    try:
        winreg = cast(_WinReg, importlib.import_module("winreg"))
    except ImportError as exc:
        raise OSError(f"no registry here: {exc}") from None
    # the 64-bit view: a 32-bit Python would otherwise read the WOW64 copy, which lacks MachineGuid
    with winreg.OpenKey(
        winreg.HKEY_LOCAL_MACHINE, key, 0, winreg.KEY_READ | winreg.KEY_WOW64_64KEY
    ) as handle:
        value, _type = winreg.QueryValueEx(handle, name)
    return str(value)


def _run(argv: Sequence[str]) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=True).stdout
