"""``opencode-backup mcp``: the agent tools' MCP server on stdio, which opencode starts itself.

``agent-tools enable`` registers this command in opencode's config. It loads nothing of the engine
before a tool is called (opencode waits for ``initialize`` before its first answer) and stops at EOF.
Exit codes: 0 when the client closed stdin, 1 interrupted, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import signal
from types import FrameType
from typing import IO, Any

from app import APP_NAME, __version__
from app.cli.common import ALL, SETTINGS_FLAGS, add_settings_flags
from app.cli.parser import COMMANDS
from app.mcp.server import Server, ServerInfo
from app.mcp.tools import Tools

INSTRUCTIONS = (
    "Backs up the user's opencode sessions to the backup folder they chose. The status tool reports the "
    "backup; the sync tool backs up now; the search tool finds backed-up sessions by their words (every "
    "computer's, also ones deleted from opencode); the show tool reads one without restoring it; the "
    "restore tool brings sessions back: call it without confirm first, show the plan to the user, and "
    "call it with confirm true only after they agreed."
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mcp",
        help=COMMANDS["mcp"][1],
        description="Serve the agent tools (status, sync, restore, search, show) to opencode over MCP on "
        "stdin and stdout. opencode starts this itself once 'opencode-backup agent-tools enable' registered "
        "it; settings flags given here apply to every tool call.",
    )
    add_settings_flags(p, ALL)
    p.set_defaults(func=run)


class _Terminated(Exception):
    """SIGTERM arrived (opencode sends it 2 s after closing our stdin)."""


def run(args: argparse.Namespace) -> int:
    """Serve until the client closes stdin (main thread). SIGTERM or Ctrl-C cancel running calls first,
    so a sync in progress stops at a check point instead of in the middle of a file."""
    flags = {key: getattr(args, name, None) for name, (_flag, key, _help) in SETTINGS_FLAGS.items()}
    stdin, stdout = _protocol_streams()
    server = Server(Tools(flags), stdout, ServerInfo(APP_NAME, __version__, INSTRUCTIONS))
    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.serve(stdin)
    except (_Terminated, KeyboardInterrupt):
        server.stop()
        return 1
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    """stdin and stdout for the protocol alone: file descriptors 0 and 1 are then pointed at the null
    device and at stderr, so a stray print, a library or a child process (rsync) can neither write
    into the protocol nor read a message meant for the server."""
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr to send it to: nowhere, then
        os.dup2(null, 1)
    os.close(null)
    return protocol_in, protocol_out
