"""Engine version: part of every cache key, bump it whenever computed values may change."""

__version__ = "0.2.0"
