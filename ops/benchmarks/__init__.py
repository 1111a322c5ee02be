"""Benchmarks of the service: `ops.benchmarks.compare` runs them side by side (docs/PERFORMANCE.md)."""
