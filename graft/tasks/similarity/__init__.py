"""Similarity: an encoder fitted to a user's notion of "similar", for semantic search.

A fit reads ``(query, positive)`` pairs, ``(anchor, positive, negative)`` triplets or scored
pairs from a table, or a BEIR folder (:mod:`.read`); trains the text encoder (mean pooled,
normalised, as sentence-transformers' MiniLM) with in-batch negatives or a cosine loss
(:mod:`.losses`, :mod:`.training`), keeping the epoch of best validation nDCG@10 and the
pretrained encoder when no epoch beats it; embeds a corpus into an on-disk FAISS index
(:mod:`.index`) and answers queries (:mod:`.model`); evaluates retrieval as BEIR does
(:mod:`.metrics`). Nothing outside this package imports it: the engine and the command line
reach it through the registry (:func:`graft.tasks.task_class`) and
:class:`graft.tasks.capabilities.FitsItself` / :class:`~graft.tasks.capabilities.Searches`.
"""
