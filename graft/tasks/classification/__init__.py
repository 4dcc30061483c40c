"""graft.tasks.classification."""
