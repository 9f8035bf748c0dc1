"""The message window: a text and [OK]; Enter, Escape and the close box answer too.

Main thread of the dialog process.
"""

from __future__ import annotations

from app.ui.dialog.base import Trace, Window
from app.ui.dialog.protocol import Done, MessageRequest


class Message(Window):
    """A text and [OK]; every way out answers :class:`Done`."""

    def __init__(self, request: MessageRequest, trace: Trace) -> None:
        super().__init__(request.title, trace)
        buttons = self.button_row()
        self.text_with_icon("error" if request.error else "information", request.text)
        ok = self.button(buttons, "OK", self.close, default=True)
        ok.pack(side="right")
        self.first_focus = ok

    def close(self) -> None:
        self.finish(Done(ok=True))
