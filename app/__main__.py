"""``python -m app``: the command line (see :mod:`app.cli`), or a dialog (see :mod:`app.entry`).

An installed build runs this file as its script: its executable starts the same way."""

from __future__ import annotations

import sys

from app.entry import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
