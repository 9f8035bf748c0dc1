"""Edit one member of a JSONC document in its text, keeping every other byte: comments, formatting,
key order, trailing commas, line endings.

Used on opencode's own config, which users write by hand and opencode validates strictly: re-serialising
it would drop their comments and layout. Each edit is checked by parsing the result: it must equal the
document before, with exactly the one change asked for; anything else raises :class:`JsoncEditError`
and the caller writes nothing. Pure functions of text; no I/O.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from app import jsonc

_LITERAL = re.compile(r"true|false|null")
_INDENT = re.compile(r"\n([ \t]+)\S")


class JsoncEditError(ValueError):
    """The document cannot be edited as asked (not an object where one is needed); one line."""


@dataclass(frozen=True)
class _Node:
    """A value's span in the text; ``members`` for an object."""

    start: int
    end: int
    members: tuple[_Member, ...] | None = None


@dataclass(frozen=True)
class _Member:
    """``"key": value`` in an object; ``comma`` is the comma after it (a trailing one too)."""

    key: str
    start: int
    value: _Node
    comma: int | None


class _Scanner:
    """Spans of a JSON text whose comments are blanked (trailing commas allowed); the text is valid."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._decoder = json.JSONDecoder()

    def skip(self, i: int) -> int:
        while i < len(self.text) and self.text[i] in " \t\r\n":
            i += 1
        return i

    def value(self, i: int) -> _Node:
        i = self.skip(i)
        c = self.text[i]
        if c == "{":
            return self._object(i)
        if c == "[":
            return self._array(i)
        literal = _LITERAL.match(self.text, i)
        if literal:
            return _Node(i, literal.end())
        _value, end = self._decoder.raw_decode(self.text, i)  # a string or a number
        return _Node(i, end)

    def _object(self, start: int) -> _Node:
        members: list[_Member] = []
        i = self.skip(start + 1)
        while self.text[i] != "}":
            key, j = self._decoder.raw_decode(self.text, i)
            j = self.skip(j)  # at the colon
            node = self.value(j + 1)
            j = self.skip(node.end)
            comma = None
            if self.text[j] == ",":
                comma, j = j, self.skip(j + 1)
            members.append(_Member(str(key), i, node, comma))
            i = j
        return _Node(start, i + 1, tuple(members))

    def _array(self, start: int) -> _Node:
        i = self.skip(start + 1)
        while self.text[i] != "]":
            i = self.skip(self.value(i).end)
            if self.text[i] == ",":
                i = self.skip(i + 1)
        return _Node(start, i + 1)


def set_member(text: str, path: tuple[str, ...], value: Any) -> str:
    """``text`` with ``doc[path[0]]...[path[-1]] = value``, creating missing objects on the way.
    Raises JsoncError (not JSONC) or JsoncEditError (something on the path is not an object)."""
    doc = _load_object(text)
    expected = copy.deepcopy(doc)
    target = expected
    for i, key in enumerate(path[:-1]):
        if key not in target:
            target[key] = {}
        elif not isinstance(target[key], dict):
            raise JsoncEditError(f"{'.'.join(path[: i + 1])} is not an object")
        target = target[key]
    target[path[-1]] = value
    editor = _Editor(text)
    node = editor.root
    for depth, key in enumerate(path):
        member = _last(node, key)
        rest = path[depth + 1 :]
        if member is None:
            nested: Any = value
            for inner in reversed(rest):
                nested = {inner: nested}
            return _checked(editor.insert(node, key, nested), expected)
        if not rest:
            return _checked(editor.replace(member, value), expected)
        node = member.value
    raise ValueError("set_member needs a path of at least one key")


def remove_member(text: str, path: tuple[str, ...]) -> str:
    """``text`` without ``doc[path[0]]...[path[-1]]`` (every occurrence of the key); ``text`` itself
    when it is absent."""
    doc = _load_object(text)
    expected = copy.deepcopy(doc)
    parent: Any = expected
    for key in path[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(parent, dict) or path[-1] not in parent:
        return text
    del parent[path[-1]]
    while True:
        editor = _Editor(text)
        node: _Node | None = editor.root
        for key in path[:-1]:
            member = _last(node, key) if node is not None else None
            node = member.value if member is not None else None
        if node is None or node.members is None or _last(node, path[-1]) is None:
            return _checked(text, expected)
        text = editor.remove(node, max(i for i, m in enumerate(node.members) if m.key == path[-1]))


def _load_object(text: str) -> dict[str, Any]:
    doc = jsonc.loads(text)
    if not isinstance(doc, dict):
        raise JsoncEditError("the file does not hold a JSON object")
    return doc


def _last(node: _Node, key: str) -> _Member | None:
    """The member ``key`` that counts (JSON parsers keep the last of duplicate keys)."""
    found = [m for m in node.members or () if m.key == key]
    return found[-1] if found else None


def _checked(new_text: str, expected: dict[str, Any]) -> str:
    try:
        ok = jsonc.loads(new_text) == expected
    except jsonc.JsoncError:
        ok = False
    if not ok:
        raise JsoncEditError("the edit could not be made without changing something else")
    return new_text


class _Editor:
    """Edits of one text; each method returns the new text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.root = _Scanner(jsonc.strip_comments(text)).value(0)
        self.nl = "\r\n" if "\r\n" in text else "\n"
        first = _INDENT.search(text)
        self.unit = first.group(1) if first else "  "

    def replace(self, member: _Member, value: Any) -> str:
        node = member.value
        compact = node.members is not None and self._compact(node)  # keep a one-line object one line
        rendered = self._render(value, self._indent_of(member.start), compact)
        return self.text[: node.start] + rendered + self.text[node.end :]

    def insert(self, obj: _Node, key: str, value: Any) -> str:
        t = self.text
        members = obj.members or ()
        compact = self._compact(obj) if members else "\n" not in t.strip() and obj is not self.root
        if not members:
            indent = self._indent_of(obj.start)
            if compact:
                return t[: obj.start + 1] + self._member(key, value, "", True) + t[obj.end - 1 :]
            inner = self._member(key, value, indent + self.unit, False)
            close = obj.end - 1
            line = self._line_start(close)
            if "\n" in t[obj.start : close] and not t[line:close].strip():
                return t[:line] + indent + self.unit + inner + self.nl + t[line:]
            return t[: obj.start + 1] + self.nl + indent + self.unit + inner + self.nl + indent + t[close:]
        last = members[-1]
        trailing = last.comma is not None
        anchor = last.comma + 1 if last.comma is not None else last.value.end
        if compact:
            text = f" {self._member(key, value, '', True)}" + ("," if trailing else "")
            return t[:anchor] + ("" if trailing else ",") + text + t[anchor:]
        indent = self._members_indent(obj)
        entry = self.nl + indent + self._member(key, value, indent, False) + ("," if trailing else "")
        eol = t.find("\n", anchor)
        eol = len(t) if eol == -1 else eol - (1 if t[eol - 1] == "\r" else 0)
        at = min(eol, obj.end - 1)
        comma = "" if trailing else ","
        return t[:anchor] + comma + t[anchor:at] + entry + t[at:]

    def remove(self, obj: _Node, index: int) -> str:
        t = self.text
        members = obj.members or ()
        member = members[index]
        line = self._line_start(member.start)
        own_line = not t[line : member.start].strip()
        start = line if own_line else member.start
        end = member.comma + 1 if member.comma is not None else member.value.end
        prev_comma = members[index - 1].comma if member.comma is None and index > 0 else None
        if not own_line and prev_comma is not None:  # `{"a": 1, "b": 2}` -> `{"a": 1}`
            return t[:prev_comma] + t[end:]
        while end < len(t) and t[end] in " \t":
            end += 1
        if t.startswith("//", end):
            eol = t.find("\n", end)
            end = len(t) if eol == -1 else eol
            end -= 1 if t[end - 1] == "\r" else 0
        if own_line and t.startswith("\r\n", end):
            end += 2
        elif own_line and t.startswith("\n", end):
            end += 1
        elif own_line:
            start = member.start
        out = t[:start] + t[end:]
        if prev_comma is not None:  # it was the last member: the one before loses its comma
            out = out[:prev_comma] + out[prev_comma + 1 :]
        return out

    def _render(self, value: Any, indent: str, compact: bool) -> str:
        if compact or not isinstance(value, dict) or not value:
            return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        inner = indent + self.unit
        items = [inner + self._member(k, v, inner, False) for k, v in value.items()]
        return "{" + self.nl + ("," + self.nl).join(items) + self.nl + indent + "}"

    def _member(self, key: str, value: Any, indent: str, compact: bool) -> str:
        return json.dumps(key, ensure_ascii=False) + ": " + self._render(value, indent, compact)

    def _compact(self, node: _Node) -> bool:
        return "\n" not in self.text[node.start : node.end]

    def _members_indent(self, obj: _Node) -> str:
        first = (obj.members or ())[0]
        line = self._line_start(first.start)
        if not self.text[line : first.start].strip():
            return self.text[line : first.start]
        return self._indent_of(obj.start) + self.unit

    def _indent_of(self, pos: int) -> str:
        line = self._line_start(pos)
        rest = self.text[line:pos]
        return rest[: len(rest) - len(rest.lstrip(" \t"))]

    def _line_start(self, pos: int) -> int:
        return self.text.rfind("\n", 0, pos) + 1
