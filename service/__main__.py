"""python -m serverprep.service: the same as ``serverprep serve``."""

import sys

from serverprep.service.commands import main_serve

sys.exit(main_serve(sys.argv[1:]))
