"""Read what rclone said: its JSON log (``--use-json-log``) and exit code, by tables; all pure.

Each log line is a JSON object (``level``, ``msg``, ``object``, and ``stats`` for the periodic and final
statistics); a few fatal errors come before the JSON logger is set up, as plain text ("Failed to create
file system for ..."): both are read. What rclone did comes from its ``info`` lines ("Copied (new)",
"Moved (server-side)", "Deleted"); why it failed from the errors' words, matched against the table below
(rclone's own messages and the services' error codes, which are not translated), and its exit code
(rclone.org/docs/#exit-code: 3 directory not found, 5 temporary error, 7 fatal error).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.errors import FailureKind


@dataclass(frozen=True)
class Stats:
    """rclone's statistics (its last ``stats`` object): bytes done of the total, files done of the total."""

    bytes: int = 0
    total_bytes: int = 0
    transfers: int = 0
    total_transfers: int = 0
    eta: float | None = None


@dataclass(frozen=True)
class Said:
    """One run's log: the objects it copied, moved and deleted (paths relative to the command's folders),
    its error messages in order, and its last statistics."""

    copied: frozenset[str] = frozenset()
    moved: frozenset[str] = frozenset()
    deleted: frozenset[str] = frozenset()
    errors: tuple[str, ...] = ()
    stats: Stats | None = None

    @property
    def text(self) -> str:
        return "; ".join(self.errors)


@dataclass
class _Collect:
    copied: set[str] = field(default_factory=set)
    moved: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    stats: Stats | None = None


def parse_line(line: str) -> dict[str, Any] | None:
    """One log line as a dict (``level``, ``msg``, ``object``, ``stats``); a plain-text line as an error
    (its date cut off); None for an empty line."""
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    text = (
        line[20:] if len(line) > 20 and line[4] == "/" and line[19] == " " else line
    )  # "2026/12/06 05:38:42 "
    return {"level": "error", "msg": text.removeprefix("ERROR : ").removeprefix("CRITICAL: ")}


def read_log(text: str) -> Said:
    """Everything one run said on stderr."""
    got = _Collect()
    for line in text.splitlines():
        entry = parse_line(line)
        if entry is not None:
            _take(entry, got)
    errors = tuple(dict.fromkeys(got.errors))  # rclone repeats an error once per retry
    return Said(
        frozenset(got.copied),
        frozenset(got.moved),
        frozenset(got.deleted),
        errors,
        got.stats,
    )


def stats_of(entry: dict[str, Any]) -> Stats | None:
    """The statistics one log entry carries (None: it carries none)."""
    raw = entry.get("stats")
    if not isinstance(raw, dict):
        return None

    def number(key: str) -> int:
        value = raw.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    eta = raw.get("eta")
    return Stats(
        number("bytes"),
        number("totalBytes"),
        number("transfers"),
        number("totalTransfers"),
        float(eta) if isinstance(eta, int | float) and not isinstance(eta, bool) else None,
    )


def _take(entry: dict[str, Any], got: _Collect) -> None:
    msg, obj, level = entry.get("msg"), entry.get("object"), entry.get("level")
    stats = stats_of(entry)
    if stats is not None:
        got.stats = stats
        return
    if not isinstance(msg, str):
        return
    if isinstance(obj, str) and level == "info":
        if msg.startswith("Copied"):
            got.copied.add(obj)
        elif msg.startswith("Moved"):
            got.moved.add(obj)
        elif msg == "Deleted":
            got.deleted.add(obj)
    elif level in ("error", "critical"):
        if msg.startswith("Attempt ") or msg == "Fatal error received - not attempting retries":
            return  # rclone's summary of the errors it already logged
        got.errors.append(f"{obj}: {msg}" if isinstance(obj, str) and obj else msg)


# Words of rclone's and the services' errors -> why it failed. First match wins, in this order.
_NO_REMOTE = ("didn't find section in config file",)
_SIGN_IN = (
    "unable to authenticate",  # sftp: wrong password or key
    "401 Unauthorized",
    "invalid_grant",  # OAuth (Google Drive, OneDrive...): the token was revoked or expired
    "token expired",
    "Token has been expired or revoked",
    "couldn't fetch token",
    "cannot fetch token",
    "empty token found",
    "InvalidAccessKeyId",  # S3
    "SignatureDoesNotMatch",
    "bad_auth_token",  # B2
    "expired_auth_token",
    "unauthorized",
)
_DUPLICATES = ("Duplicate object found", "duplicate file", "Duplicate directory found")
_FULL = (
    "storageQuotaExceeded",  # Google Drive: the account is full
    "storage quota has been exceeded",
    "InsufficientStorage",
    "507 Insufficient Storage",
    "cap_exceeded",  # B2
    "no space left on device",
    "Quota exceeded",
)
_SLOW_DOWN = (
    "rateLimitExceeded",  # Google Drive: about 2 new files a second
    "userRateLimitExceeded",
    "dailyLimitExceeded",  # Google Drive: 750 GB uploaded a day
    "uploadLimitExceeded",
    "Rate Limit Exceeded",
    "429 Too Many Requests",
    "TooManyRequests",
    "too_many_requests",
    "SlowDown",  # S3
    "503 Service Unavailable",
    "RequestLimitExceeded",
)
_OFFLINE = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "network is unreachable",
    "no route to host",
    "connection reset by peer",
    "broken pipe",
    "TLS handshake timeout",
    "context deadline exceeded",
    "server misbehaving",
    "couldn't connect",
    "unexpected EOF",
    "502 Bad Gateway",
    "504 Gateway Timeout",
    "dial tcp",
    "connection lost",
)


def _matches(text: str, words: tuple[str, ...]) -> bool:
    low = text.lower()
    return any(w.lower() in low for w in words)


def problem(returncode: int, said: Said, name: str, folder: str) -> tuple[FailureKind, str] | None:
    """Why a run on remote ``name`` (its backup folder: ``folder``, as rclone names it) failed, as (kind,
    one line naming what to do), or None when it did not. Pure."""
    if returncode == 0 and not said.errors:
        return None
    detail = _short(said.text) or f"rclone exit {returncode}"
    remote = f"{name}:"
    if any(_matches(e, _NO_REMOTE) for e in said.errors):
        return FailureKind.FATAL, (
            f"rclone has no remote named '{name}' in its config ('rclone listremotes' lists yours; "
            "'rclone config' adds one)"
        )
    for words, kind, line in (
        (_SIGN_IN, FailureKind.SIGN_IN,
         f"rclone cannot sign in to '{remote}' ({detail}); run 'rclone config reconnect {remote}' (or "
         "'rclone config' if its password or keys changed), then back up again"),
        (_DUPLICATES, FailureKind.FATAL,
         f"the remote holds two files of one name ({detail}); run 'rclone dedupe {folder}' to keep one"),
        (_FULL, FailureKind.FATAL, f"the remote '{remote}' is full ({detail}); make room there"),
        (_SLOW_DOWN, FailureKind.RATE_LIMITED,
         f"the remote '{remote}' asks us to slow down ({detail}); backed up on this computer, uploading "
         "later"),
        (_OFFLINE, FailureKind.OFFLINE,
         f"the remote '{remote}' cannot be reached ({detail}); backed up on this computer, retrying"),
    ):  # fmt: skip
        if any(_matches(e, words) for e in said.errors):
            return kind, line
    if returncode == 5:  # rclone: "temporary error (one that more retries might fix)"
        return FailureKind.OFFLINE, f"rclone failed for now ({detail}); backed up on this computer, retrying"
    return FailureKind.FATAL, f"rclone failed on '{remote}' ({detail})"


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
