"""The process entry point of every way the app starts: the ``opencode-backup`` and ``opencode-backup-tray``
commands, ``python -m app``, and the executables of the installed builds (``build/``).

The tray starts each dialog as ``sys.executable -m app.ui.dialog KIND`` (see
:func:`app.ui.dialogs.dialog_command`). Under Python that is the interpreter; in an installed build it is our
own executable, whose command line has no ``-m``. So this entry point answers exactly that form itself and
hands everything else to the CLI: what the tray sends is the same everywhere.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from app import cli

DIALOG_MODULE = "app.ui.dialog"


def main(argv: Sequence[str] | None = None) -> int:
    """Run a dialog (``-m app.ui.dialog KIND``) or a CLI command; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if getattr(sys, "frozen", False):
        _apply(frozen_environment(os.environ, getattr(sys, "_MEIPASS", "")))
        null_missing_streams(sys)
    if args[:2] == ["-m", DIALOG_MODULE]:
        from app.ui import dialog  # noqa: PLC0415 - tkinter: loaded for a dialog only, so the CLI runs without it

        return dialog.main(args[2:])
    return cli.main(args)


def frozen_environment(env: Mapping[str, str], bundle_dir: str) -> dict[str, str | None]:
    """What an installed build changes in its own environment (None: remove) so that the programs it starts
    run as they would from a terminal. Pure; ``bundle_dir`` is the build's folder of libraries.

    On Linux the bootloader puts ``bundle_dir`` first in ``LD_LIBRARY_PATH`` (keeping the user's value in
    ``LD_LIBRARY_PATH_ORIG``): a system program we start (rsync, xdg-open) would load our copies of libssl or
    libz instead of its own, and may fail on a newer system. Our own executable, started again for a dialog,
    would take the bootloader's variables left behind as a sign that it is set up already and skip pointing
    the loader at its libraries; ``PYINSTALLER_RESET_ENVIRONMENT`` makes it set itself up anew.
    """
    changes: dict[str, str | None] = {"PYINSTALLER_RESET_ENVIRONMENT": "1"}
    if env.get("LD_LIBRARY_PATH", "").split(os.pathsep)[0] == bundle_dir:
        changes["LD_LIBRARY_PATH"] = env.get("LD_LIBRARY_PATH_ORIG")
        changes["LD_LIBRARY_PATH_ORIG"] = None
    return changes


def _apply(changes: Mapping[str, str | None]) -> None:
    for name, value in changes.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def null_missing_streams(module: object) -> None:
    """Give a windowed executable (the Windows tray, the macOS app) the null device for each standard
    stream it was started without, so a stray print, warning or log line never raises."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(module, name, None) is None:
            setattr(module, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115 - for the process's life
