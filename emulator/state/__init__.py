"""In-memory state of the emulated tenant: files, documents, projects, companies, enrichment."""

from emulator.state.store import Store

__all__ = ["Store"]
