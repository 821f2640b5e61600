"""Benchmarks: national instances, the obvious per-pair model as a baseline, and the runner.

See ``benchmarks/README.md``. Nothing here is imported by the allocator.
"""
