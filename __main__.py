"""`python -m tutorlane` runs the command line."""

from tutorlane.entrypoints.cli import main

main()
