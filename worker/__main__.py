"""``python -m worker`` is ``hypatos-worker``."""

from worker.cli import main

main()
