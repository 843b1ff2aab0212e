"""Read models: each a tracked projection of the event store, rebuildable from zero."""
