"""What the tray and a dialog process say to each other: one typed request in, one typed answer out.

Both sides import this module; it needs neither tkinter nor the tray. ``python -m app.ui.dialog KIND``
reads ONE JSON object on stdin, the request of that :class:`Kind`, and writes ONE JSON object on one line
to stdout, its answer. Requests and answers are the frozen dataclasses below, converted only by
:mod:`app.codec` (strict: a field of the wrong type is a bad request; unknown fields are ignored, a
missing one takes its default, a missing ``text``/``sessions``/``state_dir`` is a bad request).

Exit codes (:class:`Exit`): 0 the answer is on stdout; 1 cancelled (stdout ``{"cancelled": true}``);
2 bad request (unknown KIND, invalid JSON, a field that does not fit: one line on stderr, no window);
3 no window could be opened (no display, no Tk) or the dialog failed: one line on stderr. A client
treats an exit 1 without the cancel answer (a traceback, say) as a failure, not as a cancel.

Kinds, request -> answer (each request names its answer type in ``answer``):

* ``confirm`` :class:`ConfirmRequest` -> :class:`Done`. Cancel is the default button, so Enter cancels;
  ``strong`` keeps OK disabled until REPLACE is typed.
* ``pick`` :class:`PickRequest` -> :class:`Picked`: the chosen ids in list order, or ``replace_all``.
* ``folder`` :class:`FolderRequest` -> :class:`Chosen`: an absolute path (one of the suggestions offered
  first, or Tk's directory dialog), or ``rclone:REMOTE:PATH`` when ``remotes`` are offered and one is chosen.
* ``message`` :class:`MessageRequest` -> :class:`Done` (every way out of it answers).
* ``status`` :class:`StatusRequest` -> :class:`Done` when closed; it re-reads the service's status file
  every second and updates its rows in place.
* ``browse`` :class:`BrowseRequest` -> :class:`Browsed` ("Restore this version": which copy of which
  session), or cancelled when closed. It searches and reads the backup folder itself (its own process);
  "Save as Markdown…" writes the file there and answers nothing.
* ``recovery`` :class:`RecoveryRequest` -> :class:`Done`: the recovery key shown once, with Copy and Save…;
  its OK stays disabled until "I have stored the recovery key" is checked.

Every window's title starts with :data:`TITLE_PREFIX`. Setting :data:`TRACE_ENV` (to ``1``/``stderr``, or
to a file path to append to) makes the process report what it shows as JSON lines (``ready``,
``selection``, ``ok_enabled``, ``rows``, ``hits``, ``versions``, ``saved``, ``said``): the desktop tests read
them instead of guessing from pixels.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar, Final, Protocol, TypeVar

from app import codec
from app.codec import CodecError

TITLE_PREFIX: Final = "opencode session backup — "
TRACE_ENV: Final = "OPENCODE_BACKUP_DIALOG_TRACE"
REPLACE_WORD: Final = "REPLACE"
AGE_SECRET_KEY: Final = re.compile(r"AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}")  # age's bech32 identity


class Kind(enum.StrEnum):
    """The dialogs there are: the KIND argument of ``python -m app.ui.dialog KIND``."""

    CONFIRM = "confirm"
    PICK = "pick"
    FOLDER = "folder"
    MESSAGE = "message"
    STATUS = "status"
    BROWSE = "browse"
    RECOVERY = "recovery"

    @classmethod
    def named(cls, name: str) -> Kind | None:
        """The kind called ``name``, or None (Python 3.11's ``in`` raises for a non-member)."""
        return next((k for k in cls if k.value == name), None)


class Exit(enum.IntEnum):
    """The dialog process's exit codes."""

    OK = 0
    CANCELLED = 1
    BAD_REQUEST = 2
    NO_WINDOW = 3


class BadRequest(ValueError):
    """The request cannot be shown (exit 2); ``str(e)`` is one line."""


class NoWindow(Exception):
    """Tk could not open a window, e.g. no display (exit 3); ``str(e)`` says why."""


# ---------------------------------------------------------------- answers
# Every field is required: an empty or cut-off answer is no answer (it must never confirm anything).


@dataclass(frozen=True)
class Done:
    """The user answered: confirmed (confirm), or closed the message or status window."""

    ok: bool


@dataclass(frozen=True)
class Picked:
    """The picker's answer: the chosen session ids in list order, or "Replace everything…"."""

    ids: tuple[str, ...]
    replace_all: bool


@dataclass(frozen=True)
class Chosen:
    """The folder the user chose (absolute), or the rclone remote and folder on it (``rclone:REMOTE:PATH``)
    with ``path`` None."""

    path: Path | None
    remote: str | None = None


@dataclass(frozen=True)
class Cancelled:
    """What a cancelled dialog writes, with exit 1."""

    cancelled: bool


@dataclass(frozen=True)
class Browsed:
    """Browse backups… answered "Restore this version": the session, its machine folder, and which copy
    (``copy``: its file, or snapshot, relative to the machine folder, as ``history`` lists it; the tray
    finds it again there, so a sync meanwhile renumbering the versions does not change which one)."""

    session_id: str
    machine: str
    copy: str


Answer = Done | Picked | Chosen | Browsed
A = TypeVar("A", bound=Answer)
A_co = TypeVar("A_co", bound=Answer, covariant=True)


# ---------------------------------------------------------------- requests


class Asks(Protocol[A_co]):
    """A request of some kind whose accepted answer is an ``A_co``."""

    @property
    def kind(self) -> Kind: ...

    @property
    def answer(self) -> type[A_co]: ...


@dataclass(frozen=True, kw_only=True)
class ConfirmRequest:
    """A question with [Cancel] [``ok``]; ``strong``: OK only once REPLACE is typed."""

    kind: ClassVar[Kind] = Kind.CONFIRM
    answer: ClassVar[type[Done]] = Done
    text: str
    title: str = "Confirm"
    ok: str = "OK"
    strong: bool = False


@dataclass(frozen=True, kw_only=True)
class MessageRequest:
    """A text and [OK]; ``error`` shows the error icon instead of the information one."""

    kind: ClassVar[Kind] = Kind.MESSAGE
    answer: ClassVar[type[Done]] = Done
    text: str
    title: str = "Message"
    error: bool = False


@dataclass(frozen=True, kw_only=True)
class PickSession:
    """One row of the picker. ``time_updated`` without a zone is UTC; it is shown in local time."""

    id: str
    title: str = ""
    directory: str = ""
    time_updated: datetime | None = None
    in_opencode: bool = True
    versions: int = 1  # copies the backup holds (the current file and kept versions)


@dataclass(frozen=True, kw_only=True)
class PickRequest:
    """The restore picker over ``sessions`` (ids unique); ``allow_replace`` offers "Replace everything…"."""

    kind: ClassVar[Kind] = Kind.PICK
    answer: ClassVar[type[Picked]] = Picked
    sessions: tuple[PickSession, ...]
    allow_replace: bool = True

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, session in enumerate(self.sessions):
            if session.id in seen:
                raise CodecError(f"PickRequest.sessions[{i}]: duplicate id {session.id!r}")
            seen.add(session.id)


@dataclass(frozen=True, kw_only=True)
class FolderRequest:
    """Choose an existing folder, starting in ``initial`` when it is one (else the home folder).
    ``suggestions`` (the Google Drive folders found) are offered first, one button each; ``remotes`` (the
    user's rclone remotes, by name) are offered as "An rclone remote…", with a folder on it to type."""

    kind: ClassVar[Kind] = Kind.FOLDER
    answer: ClassVar[type[Chosen]] = Chosen
    title: str = "Choose a folder"
    initial: Path | None = None
    suggestions: tuple[Path, ...] = ()
    remotes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class StatusRequest:
    """The live status window over the service's status file in ``state_dir``."""

    kind: ClassVar[Kind] = Kind.STATUS
    answer: ClassVar[type[Done]] = Done
    state_dir: Path
    backup_path: Path | None = None
    title: str = "Status"


@dataclass(frozen=True, kw_only=True)
class BrowseRequest:
    """The Browse backups window over the backup folder ``backup_path`` (this machine's folder in it is
    ``machine``); ``source`` and ``opencode_db`` say where opencode is (whether it has a session)."""

    kind: ClassVar[Kind] = Kind.BROWSE
    answer: ClassVar[type[Browsed]] = Browsed
    backup_path: Path
    machine: str
    source: Path
    opencode_db: Path | None = None
    title: str = "Browse backups"


@dataclass(frozen=True)
class RecoveryRequest:
    """The recovery key ``key`` (an age secret key) below ``text``, with [Copy] [Save…] and the check box
    "I have stored the recovery key"; [Cancel] [``ok``], ``ok`` only once the box is checked."""

    kind: ClassVar[Kind] = Kind.RECOVERY
    answer: ClassVar[type[Done]] = Done
    key: str
    text: str
    title: str = "Encrypt backups"
    ok: str = "Encrypt"

    def __post_init__(self) -> None:
        if not AGE_SECRET_KEY.fullmatch(self.key):
            raise CodecError("RecoveryRequest.key: not an age secret key (AGE-SECRET-KEY-1…)")


Request = (
    ConfirmRequest
    | MessageRequest
    | PickRequest
    | FolderRequest
    | StatusRequest
    | BrowseRequest
    | RecoveryRequest
)

REQUEST_TYPES: Final[Mapping[Kind, type[Request]]] = MappingProxyType(
    {
        Kind.CONFIRM: ConfirmRequest,
        Kind.PICK: PickRequest,
        Kind.FOLDER: FolderRequest,
        Kind.MESSAGE: MessageRequest,
        Kind.STATUS: StatusRequest,
        Kind.BROWSE: BrowseRequest,
        Kind.RECOVERY: RecoveryRequest,
    }
)


# ---------------------------------------------------------------- the wire


def encode(value: Asks[Answer] | Answer | Cancelled) -> bytes:
    """The JSON of a request or an answer, on one line (UTF-8). Pure."""
    return codec.dumps(value)


def decode_request(kind: Kind, raw: bytes) -> Request:
    """The ``kind`` request that ``raw`` (the dialog's stdin) holds. Pure.

    Raises BadRequest with one line when it is not valid JSON, not an object, or does not fit.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(f"the {kind} request is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the {kind} request must be a JSON object")
    try:
        return codec.from_json(REQUEST_TYPES[kind], data)
    except CodecError as exc:
        raise BadRequest(f"bad {kind} request: {exc}") from None


def decode_answer(answer: type[A], raw: bytes) -> A:
    """The answer of type ``answer`` that ``raw`` (the dialog's stdout) holds. Pure.

    Raises CodecError with one line when it is not valid JSON or does not fit.
    """
    return codec.loads(answer, raw)


def is_cancel(raw: bytes) -> bool:
    """True when ``raw`` (the dialog's stdout) is the cancel answer. Pure."""
    try:
        return codec.loads(Cancelled, raw).cancelled
    except CodecError:
        return False
