"""A kind of task from outside graft, registered through the ``graft.tasks`` entry points."""
