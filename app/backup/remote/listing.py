"""A remote folder's listing (``rclone lsjson -R``), read as untrusted input: other computers and people
write the remote. A path must be a plain relative path (no ``..``, no absolute or empty part, no control
character), a size a bounded whole number, a hash a hex string; what is not is left out of the listing,
never followed. Pure apart from hashing a local file to compare it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from app.backup import untrusted as u

# The hashes a remote may report that a local copy can be checked against (rclone's names).
_HASHES = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}
_MAX_ENTRIES = 5_000_000


@dataclass(frozen=True)
class RemoteFile:
    """One file of a listing: its size, and the remote's own hashes of it (name -> hex)."""

    size: int
    hashes: dict[str, str] = field(default_factory=dict)

    def same_as(self, path: Path) -> bool | None:
        """Whether ``path`` holds the same bytes, by the first hash both can tell (None: no hash to go by;
        the caller compared sizes)."""
        for name, digest in self.hashes.items():
            make = _HASHES.get(name)
            if make is None:
                continue
            h = make(usedforsecurity=False)
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            return h.hexdigest() == digest.lower()
        return None


def plain(rel: object) -> str | None:
    """``rel`` when it is a plain relative POSIX path, else None."""
    if not isinstance(rel, str) or not rel or len(rel) > 4096 or rel.startswith("/") or "\\" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or any(ord(c) < 32 or c == "\x7f" for c in p) for p in parts):
        return None
    return rel


def parse_listing(text: str) -> dict[str, RemoteFile]:
    """``rclone lsjson -R --files-only`` output as {relative path: RemoteFile}; what fails the checks is
    left out (and a listing that is not a list is empty)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(raw, list):
        return {}
    found: dict[str, RemoteFile] = {}
    for item in raw[:_MAX_ENTRIES]:
        if not isinstance(item, dict) or item.get("IsDir"):
            continue
        rel, size = plain(item.get("Path")), item.get("Size")
        if (
            rel is None
            or isinstance(size, bool)
            or not isinstance(size, int)
            or not 0 <= size <= u.MAX_FILE_BYTES
        ):
            continue
        hashes = item.get("Hashes")
        checked = {
            name: value
            for name, value in (hashes.items() if isinstance(hashes, dict) else ())
            if name in _HASHES and isinstance(value, str) and len(value) <= 128 and _hex(value)
        }
        found[rel] = RemoteFile(size, checked)
    return found


def _hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
