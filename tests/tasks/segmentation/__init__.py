"""Tests of graft.tasks.segmentation."""
