"""Rule families, one module each; importing this package registers every rule."""
