"""Model registry: versions, aliases, lineage, gates, promotion and rollback."""
