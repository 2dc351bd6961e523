"""Pure domain logic: no Kafka, no Faust."""
