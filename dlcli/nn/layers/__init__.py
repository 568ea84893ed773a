"""Layer classes; importing this package registers every layer type."""
