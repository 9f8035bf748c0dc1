"""rclone as the way to a remote backup: the remote's name, pure command builders, and one client.

A backup path written ``rclone:REMOTE:PATH`` names a remote of the user's own rclone config (``rclone
listremotes`` lists them) and a folder on it. rclone keeps the credentials and authorizes them (``rclone
config``); this program never reads, copies or passes them: every command runs with the user's config as
rclone finds it (``RCLONE_CONFIG`` or its default place). Commands are built by the pure ``*_argv``
functions and run by :mod:`app.transfer.runner` (a list argv, never a shell); what rclone said is read
from its JSON log by :mod:`app.transfer.rclone_log`. Runs on the calling thread (the worker's, or a
command's).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.errors import FailureKind, TransferError
from app.transfer.rclone_argv import (
    Options,
    copy_request,
    delete_argv,
    delete_request,
    download_argv,
    list_argv,
    list_bytes,
    move_argv,
    move_request,
    moveto_argv,
    parse_remotes,
    remotes_argv,
    split_target,
    upload_argv,
)
from app.transfer.rclone_log import Said, problem, read_log
from app.transfer.rclone_rc import Daemon, RcError, RcGone
from app.transfer.rclone_spec import INSTALL_HINT, PREFIX, RemoteSpec, cache_dir, is_remote, parse_spec
from app.transfer.runner import Runner, RunResult, run

__all__ = [
    "INSTALL_HINT",
    "PREFIX",
    "Options",
    "Rclone",
    "RcloneFailed",
    "RemoteSpec",
    "cache_dir",
    "delete_argv",
    "download_argv",
    "find_binary",
    "is_remote",
    "list_argv",
    "list_remotes",
    "move_argv",
    "moveto_argv",
    "parse_remotes",
    "parse_spec",
    "remotes_argv",
    "upload_argv",
]

logger = logging.getLogger(__name__)

# What goes to a resident rclone (rclone_rc.py) one request a file: a warm upload's few files. More, or
# bigger, go to a command of their own (its parallel transfers, its progress, a cancel that stops it).
RESIDENT_FILES = 32
RESIDENT_BYTES = 16 << 20


class RcloneFailed(TransferError):
    """A command failed: one line and its kind, and what rclone said it did before (``said``)."""

    def __init__(self, message: str, kind: FailureKind, said: Said) -> None:
        super().__init__(message, kind)
        self.said = said


# --- running them ---------------------------------------------------------------------------------


def find_binary() -> str | None:
    """The rclone program on PATH, or None."""
    return shutil.which("rclone")


def list_remotes(binary: str, runner: Runner = run) -> dict[str, str]:
    """The user's remotes as {name: type} (``rclone listremotes --long``: it reads the config, connects to
    nothing); TransferError when rclone cannot tell (a config it cannot read, say)."""
    try:
        result = runner(remotes_argv(binary), cancel=threading.Event(), timeout=30)
    except OSError as exc:
        raise TransferError(f"rclone could not be started ({binary}): {exc}", FailureKind.FATAL) from None
    if result.returncode != 0:
        detail = " ".join(result.stderr.split())[:300] or f"exit {result.returncode}"
        raise TransferError(f"'rclone listremotes' failed: {detail}", FailureKind.FATAL)
    return parse_remotes(result.stdout)


@dataclass
class Rclone:
    """One rclone program and how its commands run; each call returns what rclone said, or raises
    TransferError (one line, its kind) when it failed. ``tell``: each line of rclone's log as it comes
    (progress of a long upload). ``daemon``: a resident rclone for the few files of a warm upload (see
    :mod:`app.transfer.rclone_rc`; None: a command each time). Used on one thread at a time."""

    binary: str
    spec: RemoteSpec
    options: Options = field(default_factory=Options)
    runner: Runner = run
    tell: Callable[[str], None] | None = None
    daemon: Daemon | None = None

    def upload(self, src: Path, dst: str, rels: Sequence[str], cancel: threading.Event) -> Said:
        """Every one of ``rels`` copied from ``src`` into ``dst``, whatever is there already."""

        def command(rest: Sequence[str]) -> Said:
            said = self._listed(
                upload_argv(self.binary, src, dst, self.options, files=len(rest)), rest, cancel
            )
            skipped = [rel for rel in rest if rel not in said.copied]
            if not skipped:
                return said
            argv = upload_argv(self.binary, src, dst, self.options, files=len(skipped), force=True)
            return _merged("copied", sorted(said.copied), self._listed(argv, skipped, cancel))

        if self._resident(rels, src):
            return self._each("copied", rels, cancel, lambda r: copy_request(str(src), r, dst, r), command)
        return command(rels)

    def move(self, src: str, dst: str, rels: Sequence[str], cancel: threading.Event) -> Said:
        def command(rest: Sequence[str]) -> Said:
            return self._listed(move_argv(self.binary, src, dst, self.options), rest, cancel)

        if self._resident(rels):
            return self._each("moved", rels, cancel, lambda r: move_request(src, r, dst, r), command)
        return command(rels)

    def moveto(self, src: str, dst: str, cancel: threading.Event) -> Said:
        (src_fs, src_rel), (dst_fs, dst_rel) = split_target(src), split_target(dst)

        def command(_rest: Sequence[str]) -> Said:
            return self._run(moveto_argv(self.binary, src, dst, self.options), None, cancel)

        if self._resident([dst_rel]):
            request = lambda _r: move_request(src_fs, src_rel, dst_fs, dst_rel)  # noqa: E731
            return self._each("moved", [dst_rel], cancel, request, command)
        return command([dst_rel])

    def delete(self, dst: str, rels: Sequence[str], cancel: threading.Event) -> Said:
        def command(rest: Sequence[str]) -> Said:
            return self._listed(delete_argv(self.binary, dst, self.options), rest, cancel)

        if self._resident(rels):
            request = lambda r: delete_request(dst, r)  # noqa: E731
            return self._each("deleted", rels, cancel, request, command)
        return command(rels)

    def download(
        self, src: str, dst: Path, cancel: threading.Event, *, rels: Sequence[str] | None = None,
        filters: Sequence[str] = (),
    ) -> Said:  # fmt: skip
        def command(rest: Sequence[str] | None) -> Said:
            argv = download_argv(
                self.binary, src, dst, self.options, listed=rest is not None, filters=filters
            )
            return self._run(argv, list_bytes(rest) if rest is not None else None, cancel)

        if rels is not None and self._resident(rels):
            return self._each("copied", rels, cancel, lambda r: copy_request(src, r, str(dst), r), command)
        return command(rels)

    def listing(self, target: str, cancel: threading.Event, *, hashes: bool = False) -> str:
        """``rclone lsjson`` of ``target`` (stdout, JSON); '[]' when the folder does not exist yet (rclone's
        exit code 3, "directory not found"; any other failure raises, even one that says "not found": an
        empty listing makes the ledger forget what the remote holds)."""
        result = self._call(list_argv(self.binary, target, self.options, hashes=hashes), None, cancel)
        said = read_log(result.stderr)
        if result.returncode == 3 and not result.cancelled:
            return "[]"
        self._check(result.returncode, said, result.cancelled)
        return result.stdout

    def _resident(self, rels: Sequence[str], local: Path | None = None) -> bool:
        """Whether ``rels`` (files of folder ``local``, when they are local) go to the resident rclone."""
        if self.daemon is None or not rels or len(rels) > RESIDENT_FILES:
            return False
        if local is None:
            return True
        try:
            return sum((local / rel).stat().st_size for rel in rels) <= RESIDENT_BYTES
        except OSError:
            return False

    def _each(
        self, what: str, rels: Sequence[str], cancel: threading.Event,
        request: Callable[[str], tuple[str, dict[str, object]]], command: Callable[[Sequence[str]], Said],
    ) -> Said:  # fmt: skip
        """One request to the resident rclone for each of ``rels``; what a command's log would say of them
        (``what``: copied, moved or deleted). A file that is not there is skipped, as a command skips it;
        when the daemon is gone, ``command`` does the rest (and every later call is a command)."""
        assert self.daemon is not None
        done: list[str] = []
        for i, rel in enumerate(rels):
            if cancel.is_set():
                raise RcloneFailed("the sync was cancelled", FailureKind.FATAL, _said(what, done))
            path, params = request(rel)
            try:
                self.daemon.call(path, params)
            except RcError as exc:
                if exc.status == 404:  # "object not found": as a command skips a listed file it cannot find
                    continue
                found = problem(1, Said(errors=(str(exc),)), self.spec.remote, self.spec.at())
                kind, line = found if found is not None else (FailureKind.FATAL, str(exc))
                raise RcloneFailed(line, kind, _said(what, done)) from None
            except RcGone as exc:
                logger.info("%s; running rclone commands instead", exc)
                self.daemon = None
                try:
                    rest = command(rels[i:])
                except RcloneFailed as failed:
                    raise RcloneFailed(str(failed), failed.kind, _merged(what, done, failed.said)) from None
                return _merged(what, done, rest)
            done.append(rel)
        return _said(what, done)

    def _listed(self, argv: list[str], rels: Sequence[str], cancel: threading.Event) -> Said:
        if not rels:
            return Said()
        return self._run(argv, list_bytes(rels), cancel)

    def _run(self, argv: list[str], data: bytes | None, cancel: threading.Event) -> Said:
        result = self._call(argv, data, cancel)
        said = read_log(result.stderr)
        self._check(result.returncode, said, result.cancelled)
        return said

    def _call(self, argv: list[str], data: bytes | None, cancel: threading.Event) -> RunResult:
        try:
            return self.runner(argv, cancel=cancel, input=data, on_stderr=self.tell)
        except OSError as exc:
            raise TransferError(
                f"rclone could not be started ({self.binary}): {exc}", FailureKind.FATAL
            ) from None

    def _check(self, returncode: int, said: Said, cancelled: bool) -> None:
        if cancelled:
            raise RcloneFailed("the sync was cancelled", FailureKind.FATAL, said)
        found = problem(returncode, said, self.spec.remote, self.spec.at())
        if found is not None:
            raise RcloneFailed(found[1], found[0], said)


def _said(what: str, done: Sequence[str]) -> Said:
    """What a command's log would say of ``done`` files ``what`` (copied, moved or deleted)."""
    return Said(**{what: frozenset(done)})  # type: ignore[arg-type]


def _merged(what: str, done: Sequence[str], said: Said) -> Said:
    return replace(said, **{what: getattr(said, what) | frozenset(done)})
