"""Tests of the stratalog command line."""
