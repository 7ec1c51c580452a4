"""The task file and what is compiled from it, and where secrets come from."""
