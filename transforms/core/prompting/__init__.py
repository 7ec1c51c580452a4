"""What the model is asked: the rendered prompt, the response shape, copied fields."""
