"""``python -m oodscope.cli``: the command line."""

from oodscope.cli import main

main()
