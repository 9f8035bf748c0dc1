"""Start-up: a command loads only what it runs. ``--version`` and ``--help`` load no engine, no third-party
package and no other command; ``status`` loads no sync engine, snapshot compressor or tray. Checked from the
modules a fresh process holds when the command is done (``sys.modules``), not from timings
(bench/bench_targets.py times them).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from app import cli
from app.cli.parser import COMMANDS, ENGINE_CHOICES
from app.transfer import ENGINE_NAMES

HEAVY = ("zstandard", "PIL", "watchdog", "pystray", "plyer", "psutil", "filelock", "platformdirs", "sqlite3")
ENGINE = ("app.backup", "app.service", "app.opencode", "app.transfer", "app.wiring", "app.config", "app.ui")


PROBE = """
import sys
from app.entry import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("MODULES", *sorted(sys.modules), file=sys.stderr)
"""


def loaded_by(*args: str) -> set[str]:
    """The modules a fresh process holds after running the command line ``ARGS`` (as ``python -m app``)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False, timeout=60
    )
    line = next(line for line in proc.stderr.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


def roots(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY or m.startswith(ENGINE)}


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_version_and_help_load_no_engine_no_third_party_package_and_no_command(args: list[str]) -> None:
    loaded = loaded_by(*args)
    assert "app.cli.parser" in loaded  # the check sees our modules
    assert not roots(loaded), sorted(roots(loaded))
    assert not {m for m in loaded if m.startswith("app.cli.") and m != "app.cli.parser"}


def test_a_command_loads_its_own_module_and_not_the_others() -> None:
    loaded = loaded_by("status", "--help")
    assert "app.cli.status" in loaded
    assert not {"app.cli.sync", "app.cli.restore", "app.cli.run", "app.cli.mcp", "app.cli.listing"} & loaded
    assert not {"app.backup.sync", "zstandard", "watchdog", "PIL", "pystray", "app.ui"} & loaded


def test_each_help_line_is_what_its_module_registers() -> None:
    parser = cli.build_parser(None)  # every command module imported and registered
    sub = next(a for a in parser._actions if a.dest == "command")
    registered = {a.dest: a.help for a in sub._choices_actions}  # type: ignore[attr-defined]
    assert registered == {name: help_text for name, (_module, help_text) in COMMANDS.items()}
    assert list(registered) == list(COMMANDS)


def test_the_parser_offers_the_engines_the_transfer_package_has() -> None:
    assert ENGINE_CHOICES == ENGINE_NAMES
