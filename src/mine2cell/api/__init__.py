"""The HTTP service: a FastAPI app over the same components the CLI wires."""
