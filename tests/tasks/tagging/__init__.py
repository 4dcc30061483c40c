"""Tests of graft.tasks.tagging."""
