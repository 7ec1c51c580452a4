"""The Kafka edge (kafka-python): snapshot offsets, read ranges, write, commit."""
