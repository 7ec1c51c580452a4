"""What the model answered: repair, schema-guided coercion, validation."""
