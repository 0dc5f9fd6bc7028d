"""python -m serverprep.clients.cli: the same as the ``serverprep`` command."""

import sys

from serverprep.clients.cli import main

sys.exit(main())
