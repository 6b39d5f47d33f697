"""The version of nclkit (the same as pyproject.toml's), written into every checkpoint."""
__version__ = "0.1.0"
