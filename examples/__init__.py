"""Runnable examples of stratalog in real services."""
