"""Access-controlled enterprise retrieval gateway."""

__version__ = "0.1.0"
