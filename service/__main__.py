"""python -m serverprep.service: the same as ``serverprep serve``."""

import sys

from serverprep.clients.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
