"""Upkeep of a project's stores: garbage collection (``gc``)."""
