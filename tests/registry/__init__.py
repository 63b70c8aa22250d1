"""Tests of the model registry package."""
