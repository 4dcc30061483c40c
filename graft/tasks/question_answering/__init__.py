"""Extractive question answering: the answer to a question is a span of its context (see
:mod:`graft.tasks.question_answering.task`). Its parts: the data and their readers (``data``,
``read``), windows and spans (``windows``), batches (``batches``), the encoder and the runs it
continues (``encoder``), the span head and its module (``module``), answers (``answers``), the
official SQuAD metrics (``squad``), capabilities and options."""
