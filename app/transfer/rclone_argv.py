"""rclone's commands and remote-control requests, built by pure functions (a list argv, never a shell);
:mod:`app.transfer.rclone` runs them. Nothing here runs anything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# rclone gives up on a call at the first of these instead of retrying for minutes: the service retries
# (with backoff) and says so. Measured on 127.0.0.1: a refused connection fails in 0.09 s, a wrong password
# in 0.19 s.
_PATIENCE = ("--retries", "1", "--low-level-retries", "3", "--contimeout", "30s", "--timeout", "5m")
_LOG = ("--use-json-log", "-v", "--stats", "2s", "--stats-log-level", "INFO")


@dataclass(frozen=True)
class Options:
    """How commands run: ``bwlimit`` as rclone takes it ('' for none: ``1M``, ``08:00,512k 19:00,off``)."""

    bwlimit: str = ""

    def flags(self) -> tuple[str, ...]:
        return (*_PATIENCE, *(("--bwlimit", self.bwlimit) if self.bwlimit else ()))


# --- the commands, pure ---------------------------------------------------------------------------
# A list of paths goes to rclone on its stdin (--files-from-raw -: no comment or space trimming, no temp
# file to leave behind). --no-traverse for a few files: each is looked up by name, never a listing of a
# folder of 100,000 legacy files; for many it is the other way round (a first upload of 248 files to sftp
# on 127.0.0.1: 5.7 s with it, 0.8 s without). Every upload is checked by hash where the remote has one
# (rclone's default). The caller decided what the remote lacks (its ledger), so a file rclone skipped
# because one of its size (and time) was there is sent again with --ignore-times: where the two sides share
# no hash rclone compares sizes only, and a staged session file can keep its size. Not always: it made
# that first upload 2.4 times slower (1.9 s).
NO_TRAVERSE_UP_TO = 100


def upload_argv(
    binary: str, src: Path, dst: str, opts: Options, *, files: int, force: bool = False
) -> list[str]:
    """Copy the ``files`` files listed on stdin from local folder ``src`` into ``dst`` (``force``: even
    those that look the same there)."""
    chosen = ("--no-traverse",) if files <= NO_TRAVERSE_UP_TO else ()
    forced = ("--ignore-times",) if force else ()
    return [binary, "copy", str(src), dst, "--files-from-raw", "-", *chosen, *forced, *_LOG, *opts.flags()]


def move_argv(binary: str, src: str, dst: str, opts: Options) -> list[str]:
    """Move the files listed on stdin from ``src`` to ``dst`` on the remote (server-side where it can).
    --ignore-times: a file already there with the same content is moved in all the same (rclone would
    only delete the source, and its log would not say the file is in place)."""
    return [binary, "move", src, dst, "--files-from-raw", "-", "--no-traverse", "--ignore-times", *_LOG,
            *opts.flags()]  # fmt: skip


def moveto_argv(binary: str, src: str, dst: str, opts: Options) -> list[str]:
    """Move one file ``src`` to ``dst`` on the remote (--ignore-times: as for move)."""
    return [binary, "moveto", src, dst, "--ignore-times", *_LOG, *opts.flags()]


def delete_argv(binary: str, dst: str, opts: Options) -> list[str]:
    """Delete the files listed on stdin under ``dst`` (each looked up by name: nothing else is touched)."""
    return [binary, "delete", dst, "--files-from-raw", "-", *_LOG, *opts.flags()]


def download_argv(
    binary: str, src: str, dst: Path, opts: Options, *, listed: bool = False, filters: Sequence[str] = ()
) -> list[str]:
    """Copy ``src`` into local folder ``dst``: the files listed on stdin (``listed``), else everything
    ``filters`` (rclone filter flags) let through."""
    chosen = ("--files-from-raw", "-", "--no-traverse") if listed else tuple(filters)
    return [binary, "copy", src, str(dst), *chosen, "--ignore-times", *_LOG, *opts.flags()]


def list_argv(binary: str, target: str, opts: Options, *, hashes: bool = False) -> list[str]:
    """Every file under ``target`` as JSON on stdout (with the remote's own hashes when ``hashes``)."""
    return [binary, "lsjson", target, "-R", "--files-only", "--no-mimetype", *(["--hash"] if hashes else []),
            "--use-json-log", *opts.flags()]  # fmt: skip


def remotes_argv(binary: str) -> list[str]:
    """The user's remotes and their types (``name:  type`` lines; never their settings)."""
    return [binary, "listremotes", "--long"]


def parse_remotes(text: str) -> dict[str, str]:
    """``rclone listremotes --long`` as {name: type}; pure."""
    found = {}
    for line in text.splitlines():
        name, colon, kind = line.partition(":")
        if colon and name.strip():
            found[name.strip()] = kind.strip()
    return found


def split_target(target: str) -> tuple[str, str]:
    """``REMOTE:PATH/name`` as its folder and name (rclone's fs and remote of a request)."""
    folder, slash, name = target.rpartition("/")
    if slash:
        return folder, name
    remote, _colon, name = target.partition(":")
    return f"{remote}:", name


def copy_request(src_fs: str, src: str, dst_fs: str, dst: str) -> tuple[str, dict[str, object]]:
    """operations/copyfile, never skipping a file whose size and time match (as --ignore-times)."""
    params = {"srcFs": src_fs, "srcRemote": src, "dstFs": dst_fs, "dstRemote": dst}
    return "operations/copyfile", {**params, "_config": {"IgnoreTimes": True}}


def move_request(src_fs: str, src: str, dst_fs: str, dst: str) -> tuple[str, dict[str, object]]:
    params = {"srcFs": src_fs, "srcRemote": src, "dstFs": dst_fs, "dstRemote": dst}
    return "operations/movefile", {**params, "_config": {"IgnoreTimes": True}}


def delete_request(fs: str, rel: str) -> tuple[str, dict[str, object]]:
    return "operations/deletefile", {"fs": fs, "remote": rel}


def list_bytes(rels: Sequence[str]) -> bytes:
    """``rels`` as the list rclone reads with --files-from-raw -."""
    return "".join(f"{rel}\n" for rel in rels).encode()
