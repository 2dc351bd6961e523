"""The benchmark suite: `python bench/run.py` (see docs/BENCHMARKS.md)."""
