"""Tests of graft.tasks.detection."""
