"""custseg: customer segments from a shop's transaction log."""

__version__ = "0.1.0"
