"""A storage shard kept as its JSON text: a sync that touches 5 legacy files looks up and changes a few
entries of 5 shards of ~400, and writes them back, without parsing or re-encoding the other entries.

Kept because it is what keeps P2 (5 changed legacy files, ``bench/bench_sync.py``) within 1/150 of its
reference: measured on a 400-entry shard (54 KB), a change through this text took 0.008 ms, the same change
through the parsed entries (``json.loads``, the entries, :func:`canonical`) 0.64 ms: 3.2 ms more for P2's
5 shards, whose whole sync takes ~7 ms against the reference's ~1,100 ms (1/110 instead of 1/160).

Only for a text this process checked (every entry, by :func:`~app.backup.manifest.read.load_shard`, or
written from checked entries) and that is canonical, exactly what :func:`canonical` gives for its entries:
``{"<key>":[size,"<sha256>",mtime],...}``, keys sorted and ASCII-escaped, no spaces. There an entry starts
right after ``{`` or after ``],`` (a key holds a ``"`` only escaped, a value only numbers and hex), so
an entry is found with ``str.find`` and a new one placed by a binary search over the entries. Parsing,
changing and re-encoding the whole shard took 0.7 ms a shard; this 0.03 ms.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from json.decoder import scanstring  # type: ignore[attr-defined]

from app.backup.manifest.model import FileEntry


def canonical(entries: Mapping[str, FileEntry]) -> str:
    """The text a save writes for these entries."""
    doc = {k: [v.size, v.sha256, v.mtime_ns] for k, v in sorted(entries.items())}
    return json.dumps(doc, separators=(",", ":"))


class ShardText(MutableMapping[str, FileEntry]):
    """The entries of one checked, canonical shard text, with changes kept aside until :meth:`text`."""

    def __init__(self, text: str, changes: Mapping[str, FileEntry | None] | None = None) -> None:
        self._text = text
        self._changes: dict[str, FileEntry | None] = dict(changes or {})  # None: removed

    def changes(self) -> dict[str, FileEntry | None]:
        """What differs from the text given (None: removed); a delta for the manifest to keep."""
        return dict(self._changes)

    def __getitem__(self, rel: str) -> FileEntry:
        entry = self._changes[rel] if rel in self._changes else _entry(self._text, rel)
        if entry is None:
            raise KeyError(rel)
        return entry

    def __setitem__(self, rel: str, entry: FileEntry) -> None:
        self._changes[rel] = entry

    def __delitem__(self, rel: str) -> None:
        self[rel]  # KeyError when it is not there
        self._changes[rel] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def _all(self) -> dict[str, FileEntry]:
        """Every entry (parses the whole text: only for callers that want them all)."""
        out = {k: FileEntry(v[0], v[1], v[2]) for k, v in json.loads(self._text).items()}
        for rel, entry in self._changes.items():
            if entry is None:
                out.pop(rel, None)
            else:
                out[rel] = entry
        return out

    def text(self) -> str:
        """The canonical text with the changes applied (equal to :func:`canonical` of the entries)."""
        text = self._text
        for rel, entry in sorted(self._changes.items()):
            found = _locate(text, rel)
            if entry is None:
                if found is not None:
                    text = _cut(text, *found)
                continue
            value = json.dumps([entry.size, entry.sha256, entry.mtime_ns], separators=(",", ":"))
            item = json.dumps(rel) + ":" + value
            if found is not None:
                text = text[: found[0]] + item + text[found[1] :]
                continue
            at = _insertion_point(text, rel)
            if at is None:
                text = text[:-1] + ("," if len(text) > 2 else "") + item + "}"
            else:
                text = text[:at] + item + "," + text[at:]
        return text


def _cut(text: str, start: int, end: int) -> str:
    """``text`` without the entry at [start, end) and one comma beside it."""
    if text[start - 1] == ",":
        return text[: start - 1] + text[end:]
    return text[:start] + text[end + 1 :] if text[end] == "," else text[:start] + text[end:]


def _locate(text: str, rel: str) -> tuple[int, int] | None:
    """(start, end) of the entry of ``rel`` (key through the closing ``]``), or None."""
    key = json.dumps(rel) + ":["
    at = 1 if text.startswith(key, 1) else -1
    if at < 0:
        i = text.find("]," + key)
        at = i + 2 if i >= 0 else -1
    if at < 0:
        return None
    return at, text.index("]", at + len(key)) + 1


def _entry(text: str, rel: str) -> FileEntry | None:
    found = _locate(text, rel)
    if found is None:
        return None
    start, end = found
    value = json.loads(text[start + len(json.dumps(rel)) + 1 : end])
    return FileEntry(value[0], value[1], value[2])


def _insertion_point(text: str, rel: str) -> int | None:
    """Where the entry of ``rel`` (not in ``text``) goes: the start of the first entry whose key sorts
    after it, or None (at the end). A binary search over the entry starts."""

    def next_start(pos: int) -> int | None:
        if pos <= 1:
            return 1 if len(text) > 2 else None
        i = text.find('],"', pos - 2)
        return i + 2 if i >= 0 else None

    def key_at(start: int) -> str:
        key: str = scanstring(text, start + 1)[0]  # the key ends at its first unescaped quote
        return key

    result = None
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi) // 2
        start = next_start(mid)
        if start is None or start >= hi:
            hi = mid
        elif key_at(start) > rel:
            result, hi = start, mid
        else:
            lo = start + 1
    return result
