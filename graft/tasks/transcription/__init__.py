"""Speech recognition: a transcript for each audio clip (see
:mod:`graft.tasks.transcription.task`)."""
