"""``python -m bench.cli``: the ``bench`` command, as tests and a checkout without the console script run it."""

from bench.cli import main

main()
