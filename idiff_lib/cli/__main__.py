"""``python -m idiff_lib.cli``: the same as the ``idiff`` command."""

import sys

from idiff_lib.cli import main

sys.exit(main())
