"""The REST family of metadata stores: the same interfaces, answered by a modelyard server."""
