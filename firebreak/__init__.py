"""Firebreak: the shared core (settings, clock, database, command line)."""

__version__ = "0.1.0"
