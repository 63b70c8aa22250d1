"""Child processes for the reliability tests, run as ``python -m _workers.<name>``."""
