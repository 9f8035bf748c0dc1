"""How a backup path names an rclone remote: ``rclone:REMOTE:PATH``, checked, and where its cache is.

Light on purpose (the settings import it, and every command loads the settings): what runs rclone is
:mod:`app.transfer.rclone`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from app import paths

PREFIX = "rclone:"
# rclone's own rule for a remote's name (fs/fspath: [\w_. -]+, not starting with '-'), in ASCII: the name is
# also a folder name of our cache. Connection strings (":sftp,host=..:" or "remote,param=x:") are refused:
# they put settings, maybe secrets, on a command line.
_REMOTE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_. -]*$")
_SLUG = re.compile(r"[^A-Za-z0-9_.-]")
INSTALL_HINT = {
    "linux": "install it with your package manager (Debian and Ubuntu: 'sudo apt install rclone'; Fedora: "
    "'sudo dnf install rclone') or from https://rclone.org/install/",
    "darwin": "install it with 'brew install rclone' or from https://rclone.org/install/",
    "win32": "install it with 'winget install Rclone.Rclone' or from https://rclone.org/install/",
}


@dataclass(frozen=True)
class RemoteSpec:
    """A folder on one of the user's rclone remotes: ``remote`` as in ``rclone listremotes`` (without its
    colon) and ``path`` on it ('' for its root; '/' separated, no trailing '/')."""

    remote: str
    path: str = ""

    def at(self, *parts: str) -> str:
        """rclone's name of ``parts`` under this folder: ``REMOTE:PATH/part/part``."""
        inner = "/".join(p for p in (self.path, *parts) if p)
        return f"{self.remote}:{inner}"

    @property
    def text(self) -> str:
        """As the user writes it in ``backupPath``."""
        return f"{PREFIX}{self.remote}:{self.path}"

    @property
    def slug(self) -> str:
        """A folder name for this remote folder in our cache: readable, and unique by its hash."""
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:12]
        return f"{_SLUG.sub('-', self.remote)[:40]}-{digest}"


def is_remote(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_spec(text: str) -> RemoteSpec:
    """``rclone:REMOTE:PATH`` as a RemoteSpec; ValueError (one line, the reason) when it is not one."""
    if not is_remote(text):
        raise ValueError(f"a remote is written {PREFIX}REMOTE:PATH")
    remote, colon, path = text[len(PREFIX) :].partition(":")
    if not colon:
        raise ValueError(f"a remote is written {PREFIX}REMOTE:PATH (the colon after REMOTE is missing)")
    if not _REMOTE.match(remote) or remote != remote.strip():
        raise ValueError(
            "the remote's name may hold only letters, digits, '_', '.', '-' and inner spaces, as 'rclone "
            "listremotes' shows it (connection strings are not accepted)"
        )
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        raise ValueError("the path on the remote must not hold control characters")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("the path on the remote must not hold '..'")
    lead = "/" if path.startswith("/") else ""  # an absolute path on an sftp server
    return RemoteSpec(remote, lead + "/".join(parts))


def cache_dir(spec: RemoteSpec) -> Path:
    """This remote folder's part of our cache (its mirror, its ledger, its downloads). Not created."""
    return paths.app_cache_dir() / "remotes" / spec.slug
