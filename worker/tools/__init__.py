"""Tools around the runtime, for operators and callers: the command line, the demo, the Test Connection
report, the dead-letter commands and the Python queue client.

Nothing in the runtime (`worker/`) or the catalog (`tasks/`) imports this package.
"""
