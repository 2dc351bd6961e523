"""Comparison implementations, each run as its own process (some in their own venv)."""
