"""``python -m edgeauto.cli``."""

from edgeauto.cli import main

main()
