"""Artifact stores: content-addressed blobs, chosen by URI."""
