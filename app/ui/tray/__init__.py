"""The tray app: the live service plus a pystray icon on the main thread.

- :mod:`.model`: the tray's events and its menu, as data;
- :mod:`.app`: :class:`TrayApp`, the tray's state and decisions on one thread of its own;
- :mod:`.icon`: the pystray binding (main thread);
- :mod:`.main`: :func:`run_tray`, what ``opencode-backup run`` starts.

pystray, plyer and tkinter are imported in the tray and the dialog process only, never by the engine
or the command line.
"""

from __future__ import annotations

from app.ui.tray.main import TrayFailed, run_tray

__all__ = ["TrayFailed", "run_tray"]
