"""Training and golden-set export from the output topic."""
