"""``python -m worker`` is ``hypatos-worker``."""

from worker.tools.cli import main

main()
