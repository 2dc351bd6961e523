"""A local Schema Registry (Apicurio Registry, Confluent-compatible API)."""
