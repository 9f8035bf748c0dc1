"""Text from outside, made safe to show: on a terminal, in a notification, a tooltip, a dialog, a log.

A session title, a project folder, a machine name, a file name, or an error that quotes one comes from
the backup folder (which other machines and programs write) or from opencode's database, and may hold
anything: escape sequences that retitle or clear a terminal (ESC ... BEL), C1 controls some terminals
obey (U+009B is CSI), bidirectional overrides that make text read as something else (U+202E), invisible
tag characters, lone surrogates (a file name that was not UTF-8: ``print`` cannot even encode one), or a
megabyte of it. Every face shows such text through these functions: each such character is shown
escaped (``\\x1b``, ``\\u202e``), visible and inert, and a value is cut at a length. Pure; loads only
``unicodedata`` (``--help`` prints through it).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

VALUE_LIMIT = 200  # a title, a folder, a name: more than any screen shows on one line
LINE_LIMIT = 2000  # one line of a message that quotes a few values
ELLIPSIS = "…"
# control (Cc), format (Cf: bidi overrides and marks, tag characters, zero-width spaces), lone surrogates
# (Cs), line and paragraph separators (Zl, Zp)
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEPT = frozenset("\u200c\u200d")  # zero-width (non-)joiners: inside emoji and Indic words, and inert


def unsafe(c: str) -> bool:
    """Whether the character ``c`` is shown escaped."""
    if " " <= c <= "~":
        return False
    return c not in _KEPT and unicodedata.category(c) in _UNSAFE_CATEGORIES


def _escaped(c: str) -> str:
    return repr(c)[1:-1]  # \n, \x1b, \u202e, \U000e0001: as Python writes it (no unsafe one is a quote)


def clean(text: object, limit: int = VALUE_LIMIT) -> str:
    """``text`` on one line (a newline inside is shown as ``\\n``) with every unsafe character escaped,
    at most ``limit`` characters (cut with an ellipsis)."""
    text = str(text)
    if text.isascii() and text.isprintable():  # nearly every title and path: nothing to look at
        return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS
    # each character shows as one or more: the first `limit` are enough
    shown = "".join(_escaped(c) if unsafe(c) else c for c in text[:limit])
    if len(shown) > limit or len(text) > limit:
        return shown[: limit - 1] + ELLIPSIS
    return shown


def clean_lines(text: object, limit: int = LINE_LIMIT) -> str:
    """:func:`clean` for text of several lines: each line cleaned and capped, the line breaks kept."""
    return "\n".join(clean(line, limit) for line in str(text).split("\n"))


def clean_text(text: str) -> str:
    """A long text shown whole (a message of a backed-up conversation): its line breaks and tabs kept,
    every other unsafe character escaped as :func:`clean` does, no length cap."""
    # isprintable() is False for every unsafe character (and for a few safe ones: a no-break space):
    # only the lines it flags are looked at character by character
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.replace("\t", " ").isprintable():
            lines[i] = "".join(c if c == "\t" or not unsafe(c) else _escaped(c) for c in line)
    return "\n".join(lines)


def clean_json(text: str) -> str:
    """JSON text with every unsafe character inside its strings written as a ``\\u`` escape: the same
    document for a program that parses it, inert on a terminal (``json.dumps(..., ensure_ascii=False)``
    leaves DEL, C1 controls and bidi overrides as they are). Line breaks outside strings are kept."""
    if text.isascii() and "\x7f" not in text:
        return text  # json.dumps escaped every control character below 0x20 (DEL it leaves)
    import json  # noqa: PLC0415 - not needed by --help, which prints through this module

    return "".join(json.dumps(c)[1:-1] if c != "\n" and unsafe(c) else c for c in text)


def safe_json(data: Any, **kwargs: Any) -> str:
    """``json.dumps(data, ensure_ascii=False, **kwargs)`` made inert by :func:`clean_json`."""
    import json  # noqa: PLC0415 - see clean_json

    return clean_json(json.dumps(data, ensure_ascii=False, **kwargs))


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_formatter(fmt: str = LOG_FORMAT) -> logging.Formatter:
    """A logging formatter whose lines are made safe as :func:`clean_lines` does (a log quotes file
    names and errors from the backup folder, and is read on a terminal)."""
    import logging  # noqa: PLC0415 - --help and --version never log

    class Clean(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return clean_lines(super().format(record))

    return Clean(fmt)
