"""Tests of graft.tasks.classification."""
