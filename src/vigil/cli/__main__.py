"""`python -m vigil.cli`."""

from vigil.cli import main

main()
