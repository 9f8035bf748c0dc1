"""``python -m app.ui.dialog KIND``: one dialog, the request on stdin (see app.ui.dialog.protocol)."""

import sys

from app.ui.dialog.process import main

sys.exit(main(sys.argv[1:]))
