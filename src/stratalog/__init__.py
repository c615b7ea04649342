"""stratalog."""
