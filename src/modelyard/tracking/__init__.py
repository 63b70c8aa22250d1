"""Experiment tracking: runs, params, metrics, artifacts, search and autolog."""
