"""rclone's remote control (``rclone rcd``): one rclone that stays, for the few files of a warm upload.

Each rclone command is a process that reads the config and connects before it does anything: measured
here, ``rclone version`` 53 ms and a copy of one file to an sftp server on 127.0.0.1 50-60 ms, and
40-100 ms more for each file a command moves (rclone opens another SSH session for it, or another HTTP
request); towards a cloud service each command also pays a TLS handshake and looks its folders up again.
An upload after one new message is four commands (put, replace, commit, clean): ~450 ms, three times one
``rclone copyto`` of each of its files. So the live service keeps one ``rclone rcd`` on 127.0.0.1 (a port
of its own choosing; a random user and password given in its environment, never on its command line)
and sends it a request per file (copyfile, movefile, deletefile) over the connections it keeps: 6 ms a
copy, under 2 ms a move or delete. Big batches still go to an rclone process of their own (its parallel
transfers, its log, a cancel that stops it at once). Used on one thread at a time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import secrets
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import IO, Any

from app.platform import process
from app.transfer import runner

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 20.0
_SERVING = re.compile(r"Serving remote control on (http://127\.0\.0\.1:\d+/)")


class RcGone(Exception):
    """The daemon is not there (it did not start, or it ended): the caller runs a command instead."""


class RcError(Exception):
    """A request the daemon answered with an error: its HTTP status and rclone's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Daemon:
    """One ``rclone rcd`` (``binary`` with ``flags``: the same patience and bandwidth limit as a command),
    started on the first :meth:`call`, stopped by :meth:`close`."""

    binary: str
    flags: tuple[str, ...] = ()
    pidfile: Path | None = None  # where it is noted, so a daemon left by a process that died is ended
    _proc: Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _url: str = ""
    _auth: str = ""
    _failed: bool = False

    def call(self, path: str, params: dict[str, Any], *, timeout: float = 300.0) -> dict[str, Any]:
        """POST ``params`` to ``path`` (``operations/copyfile``...) and return rclone's answer; RcError for
        an error answer, RcGone when there is no daemon to answer."""
        self._start()
        body = json.dumps(params).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Basic {self._auth}"}
        request = urllib.request.Request(self._url + path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return _object(answer.read())
        except urllib.error.HTTPError as exc:
            detail = _object(exc.read())
            raise RcError(exc.code, str(detail.get("error") or exc.reason)) from None
        except (urllib.error.URLError, OSError) as exc:
            self.close()
            raise RcGone(f"rclone's remote control stopped answering: {exc}") from None

    def close(self) -> None:
        """Stop the daemon (when it runs) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            runner.stop(proc, grace=2.0)
            if self.pidfile is not None:
                with contextlib.suppress(OSError):
                    self.pidfile.unlink()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._failed:
            raise RcGone("rclone's remote control could not be started")
        self.close()
        if self.pidfile is not None:
            process.end_leftover(self.pidfile)
        user, password = secrets.token_hex(8), secrets.token_hex(16)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - it lives as long as the daemon
        argv = [self.binary, "rcd", "--rc-addr", "127.0.0.1:0", "--use-json-log", *self.flags]
        env = {"RCLONE_RC_USER": user, "RCLONE_RC_PASS": password}
        try:
            self._proc = runner.start(argv, output=self._log, env=env)
            if self.pidfile is not None:
                process.note_child(self.pidfile, self._proc.pid)
            self._url = self._wait_for_url()
        except (OSError, RcGone) as exc:
            self._failed = True
            self.close()
            logger.info("no rclone remote control: %s; running a command each time", exc)
            raise RcGone(str(exc)) from None
        self._auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        logger.debug("rclone's remote control answers on %s", self._url)

    def _wait_for_url(self) -> str:
        assert self._proc is not None and self._log is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._log.seek(0)
            found = _SERVING.search(self._log.read().decode("utf-8", "replace"))
            if found:
                return found.group(1)
            if self._proc.poll() is not None:
                raise RcGone(f"rclone rcd ended at once (exit {self._proc.returncode})")
            time.sleep(0.01)
        raise RcGone(f"rclone rcd did not answer within {START_TIMEOUT_S:.0f} s")


def _object(raw: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        value = json.loads(raw)
        if isinstance(value, dict):
            return value
    return {}
