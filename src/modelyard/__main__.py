"""``python -m modelyard``: the command line, the same as the ``modelyard`` command."""

from modelyard.cli.app import main

main()
