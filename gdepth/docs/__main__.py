"""``python -m gdepth.docs [--check]``: see :mod:`gdepth.docs`."""

import sys

from gdepth.docs.build import main

sys.exit(main())
