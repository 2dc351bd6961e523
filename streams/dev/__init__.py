"""Development tooling, apart from the runtime path: the local Kafka and Schema Registry (from
Maven Central's jars), the demo (webhook generator and runner), a topic reader for tests, and
the one child-process wrapper the demo, tests and benchmarks share."""
