"""The package version, importable by inner modules without loading the public face."""

__version__ = "0.1.0"
