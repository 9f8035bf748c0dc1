"""The pystray binding: the icon on the main thread, its menu built from the tray's published MenuView.

pystray calls the menu's callbacks on its own thread; they only post to the tray. Each state's image
is drawn once per process.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from PIL import Image

from app.ui.icons import State, render
from app.ui.tray.app import TrayApp
from app.ui.tray.model import Menu, MenuItem, menu_items

logger = logging.getLogger(__name__)

ICON_SIZE = 64


@functools.cache
def image(state: State) -> Image.Image:
    """Each state's tray image, drawn once per process."""
    return render(state, ICON_SIZE)


class TrayIcon:
    """Binds a TrayApp to a pystray Icon (main thread). ``pystray`` is the imported module."""

    def __init__(self, app: TrayApp, pystray: Any) -> None:
        self._ps = pystray
        self.app = app
        state, tip = app.view()
        self._state = state
        self.icon = pystray.Icon("opencode-session-backup", image(state), tip, menu=pystray.Menu(self._items))
        self._failed = False
        app.show = self._show
        app.menu_changed = self._menu_changed
        app.stop_ui = self.icon.stop

    def _show(self, state: State, tip: str) -> None:
        if state is not self._state:  # the tooltip's "2 min ago" changes alone most of the time
            self._state = state
            self.icon.icon = image(state)
        if tip != self.icon.title:  # a long sync's progress rewrites it a few times a second at most
            self.icon.title = tip
        logger.debug("tray shows %s: %s", state.value, tip)

    def _menu_changed(self) -> None:
        try:
            self.icon.update_menu()
        except Exception:
            logger.debug("menu update failed", exc_info=True)

    def _items(self) -> list[Any]:
        """pystray's items for the menu the tray published last (pystray's thread)."""
        return [
            self._item(i) if i is not None else self._ps.Menu.SEPARATOR for i in menu_items(self.app.menu)
        ]

    def _item(self, item: MenuItem) -> Any:
        def post(_icon: Any, _item: Any) -> None:
            self.app.post(Menu(item.action))

        checked = None if item.checked is None else (lambda _i, on=item.checked: on)
        ps_item = self._ps.MenuItem
        return ps_item(item.label, post, enabled=item.enabled, checked=checked, default=item.default)

    def run(self) -> None:
        """pystray's loop (main thread); the tray starts once the loop runs."""

        def setup(icon: Any) -> None:
            if self._failed:
                return
            icon.visible = True
            logger.info("tray icon shown (pystray backend %s)", type(icon).__module__)
            self.app.start()

        try:
            self.icon.run(setup=setup)
        except BaseException:
            self._failed = True
            # pystray's setup thread waits for a loop that never ran, and it is not a daemon: let it go
            try:
                self.icon._mark_ready()
            except Exception:
                logger.debug("pystray's setup thread could not be released", exc_info=True)
            raise
