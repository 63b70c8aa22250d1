"""The feature store: versioned definitions, ingestion, point-in-time training sets."""
