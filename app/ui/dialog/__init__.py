"""The dialog process: ``python -m app.ui.dialog KIND`` shows one Tk window and answers in JSON.

The tray never runs Tk in its own process (pystray owns the main thread there); it starts this package
through :class:`app.ui.dialogs.DialogHost` instead. :mod:`.protocol` is what both sides say (and is all
the tray imports from here), :mod:`.process` is the process's main, :mod:`.windows` picks the window, one
module per window (:mod:`.confirm`, :mod:`.message`, :mod:`.pick`, :mod:`.folder`, :mod:`.status`) on a
shared :mod:`.base`. Importing this package loads no tkinter; only a window about to be shown does.
"""

from app.ui.dialog.process import main

__all__ = ["main"]
