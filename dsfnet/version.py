"""The package version (its own module so that code reading it need not import the public API)."""

__version__ = "0.1.0"
