"""What a source sees (SyncContext), finding connectors, and the built-in ones."""
