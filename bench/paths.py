"""Where the benchmark suite lives and writes, and the interpreter it runs its parts with."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
CACHE = RESULTS / "cache"
PY = sys.executable  # the project's venv (run.py is started with it)
