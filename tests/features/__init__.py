"""Tests of the feature store package."""
