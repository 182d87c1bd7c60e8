"""The package's ``__init__`` named by mistake instead of its ``plugin`` module: no hooks here."""
__version__ = "0.1.0"
