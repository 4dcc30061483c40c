"""graft.data.annotations."""
