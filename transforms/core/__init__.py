"""The pure core: no Beam, no Kafka. Everything here is unit-testable in isolation."""
