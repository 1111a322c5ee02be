"""The worker runtime: app, configuration, connections, tokens, HTTP client and results.

Nothing in this package knows about individual Hypatos operations; those live in `tasks.catalog`.
"""
