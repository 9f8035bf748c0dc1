"""How far a long command has got, on stderr: a bar on a terminal, a plain line now and then in a log.

A sync of a few changed sessions takes a fraction of a second and shows nothing; only work that lasts
shows progress, and never on stdout (what a script reads) or with ``--json``. On a terminal it is a tqdm
bar per step that clears itself when the step ends; without one (a cron job's log, a CI console) it is
one line every ``PLAIN_EVERY`` seconds, so a log gains a few lines per minute at most.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from app.backup.progress import Progress, Sink, Step, nowhere
from app.words import size

SHOW_AFTER = 1.0  # seconds of work before anything is shown
PLAIN_EVERY = 10.0  # seconds between two plain lines


class PlainLines:
    """A line like 'backing up sessions: 640 of 1,800, 310.2 MiB, about 40 s left', every PLAIN_EVERY s."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self._out = out
        self._clock = clock
        self._began = clock()
        self._said = float("-inf")

    def __call__(self, progress: Progress) -> None:
        now = self._clock()
        if now - self._began < SHOW_AFTER or now - self._said < PLAIN_EVERY:
            return
        self._said = now
        print(progress.sentence(), file=self._out, flush=True)

    def close(self) -> None:
        """Nothing to take back: the lines stay in the log."""


class Bars:
    """One tqdm bar per step on a terminal, shown once the step has lasted SHOW_AFTER, cleared at its end."""

    def __init__(self, out: TextIO, delay: float = SHOW_AFTER) -> None:
        self._out = out
        self._delay = delay
        self._step: Step | None = None
        self._bar: Any = None

    def __call__(self, progress: Progress) -> None:
        if progress.step is not self._step:
            self.close()
            from tqdm import tqdm  # noqa: PLC0415 - a terminal's long command only (~40 ms import)

            tqdm.monitor_interval = 0  # no monitor thread: the reports come throttled already
            self._step = progress.step
            term = shutil.get_terminal_size()
            self._bar = tqdm(
                desc=progress.step.value,
                total=progress.total,
                unit=f" {progress.unit}" if progress.unit else "it",
                file=self._out,
                leave=False,
                delay=self._delay,
                mininterval=0,  # the engine sends a few reports a second: draw each one
                miniters=1,
                # a pty that reports no size (script, some CI consoles) would draw nothing: 80 x 24 then
                ncols=term.columns,
                nrows=term.lines,
            )
        bar = self._bar
        if progress.total != bar.total:
            bar.total = progress.total
        if progress.nbytes > 0:
            bar.set_postfix_str(size(progress.nbytes), refresh=False)  # drawn by the update below
        if progress.done != bar.n:
            bar.update(progress.done - bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._step = None, None


@contextlib.contextmanager
def shown(json: bool, out: TextIO | None = None) -> Iterator[Sink]:
    """A sink that shows progress on ``out`` (stderr), or nowhere with ``--json``; cleared at the end."""
    stream = out if out is not None else sys.stderr
    if json:
        yield nowhere
        return
    sink = Bars(stream) if stream.isatty() else PlainLines(stream)
    try:
        yield sink
    finally:
        sink.close()
