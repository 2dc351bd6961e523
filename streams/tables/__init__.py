"""Faust tables: one module per table. Keys and values are raw bytes (see streams.domain.state)."""
