"""The schema-registry edge: a Confluent-compatible REST client."""
