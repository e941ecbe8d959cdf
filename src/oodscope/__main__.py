"""``python -m oodscope`` (and ``torchrun ... -m oodscope``): the command line."""

from oodscope.cli import main

main()
