"""Kafka plumbing: the local broker, admin helpers and client wrappers."""
