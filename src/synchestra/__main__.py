"""``python -m synchestra``: the command line."""

from synchestra.cli import main

main()
