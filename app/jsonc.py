"""JSON with comments (JSONC), as opencode reads it: ``//`` and ``/* */`` comments, trailing commas.

Comments and trailing commas are blanked out with spaces (newlines kept), so the line numbers of
a parse error are those of the original text. Text inside strings is never touched. Nesting is bounded
(MAX_DEPTH): the parsers and the editor of :mod:`app.jsonc_edit` recurse per level, and a file nested
100,000 deep is damage (or hostile), not a config.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 128  # opencode's own config nests 5 deep; the text editor recurses twice per level


class JsoncError(ValueError):
    """The text is not valid JSONC; ``line`` is 1-based, ``reason`` is one short phrase."""

    def __init__(self, reason: str, line: int) -> None:
        super().__init__(f"line {line}: {reason}")
        self.reason = reason
        self.line = line


def strip(text: str) -> str:
    """Return ``text`` with comments and trailing commas replaced by spaces; same length and lines.
    Raises JsoncError when it nests objects and arrays more than MAX_DEPTH deep."""
    return _blank_trailing_commas(_blank_comments(text))


def strip_comments(text: str) -> str:
    """Return ``text`` with comments (only) replaced by spaces; same length and lines. For editors of
    the text, which need to see trailing commas."""
    return _blank_comments(text)


def loads(text: str) -> Any:
    """Parse JSONC text; raise JsoncError (with the original line number) when it is not valid."""
    try:
        return json.loads(strip(text))
    except json.JSONDecodeError as exc:
        raise JsoncError(exc.msg, exc.lineno) from None
    except RecursionError:  # below MAX_DEPTH on a deep stack: still one line, never a traceback
        raise JsoncError("nested too deep", 1) from None


def _blank(chunk: str) -> str:
    return "".join(c if c in "\r\n" else " " for c in chunk)


def _blank_comments(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        elif text.startswith("//", i):
            end = n
            for stop in ("\n", "\r"):
                found = text.find(stop, i)
                if found != -1:
                    end = min(end, found)
            out.append(_blank(text[i:end]))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end == -1:
                raise JsoncError("unterminated /* comment", text.count("\n", 0, i) + 1)
            out.append(_blank(text[i : end + 2]))
            i = end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _blank_trailing_commas(text: str) -> str:
    """Blank each comma that follows a value and precedes ``}`` or ``]`` (comments are gone by now);
    refuse a text nested more than MAX_DEPTH deep.

    ``{,}`` and ``[1,,]`` stay invalid: only a comma right after a value is a trailing comma.
    """
    chars = list(text)
    prev = ""  # last significant character outside strings
    depth = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _string_end(text, i)
            prev = '"'
            continue
        if c in "{[":
            depth += 1
            if depth > MAX_DEPTH:
                raise JsoncError(f"nested more than {MAX_DEPTH} deep", text.count("\n", 0, i) + 1)
        elif c in "}]":
            depth -= 1
        if c == "," and prev not in ("{", "[", ","):
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                chars[i] = " "
        if c not in " \t\r\n":
            prev = c
        i += 1
    return "".join(chars)


def _string_end(text: str, start: int) -> int:
    """Index just past the string literal opening at ``start`` (or len(text) if unterminated)."""
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif c == "\n":
            return i  # a raw newline ends it; json.loads reports the error at the right line
        else:
            i += 1
    return n
