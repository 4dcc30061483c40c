"""graft.tasks.segmentation.task."""
