"""Similarity: an encoder fitted to a user's notion of "similar", for semantic search.

A fit reads ``(query, positive)`` pairs, ``(anchor, positive, negative)`` triplets or scored
pairs from a table, or a BEIR folder (:mod:`.read`); trains graft's text backbone (mean pooled)
under a normalising head (:mod:`.encoder`) on graft's engine, with in-batch negatives or a
cosine loss (:mod:`.losses`, :mod:`.module`) on batches without repeated queries or documents
(:mod:`.batches`), each phase keeping its epoch of best validation nDCG@10 and the fit the
pretrained encoder when no phase beats it; embeds a corpus into an on-disk FAISS index
(:mod:`.index`) and answers queries (:mod:`.model`); evaluates retrieval as BEIR does
(:mod:`.metrics`). Nothing outside this package imports it: the engine and the command line
reach it through the registry (:func:`graft.tasks.task_class`) and the capabilities
:class:`~graft.tasks.capabilities.GuardsPretrained` and
:class:`~graft.tasks.capabilities.Searches`.

The package registers a second kind, ``recommendation``
(:mod:`.recommend_task`): interactions and items tables (:mod:`.interactions`), items embedded
by the same pretrained encoder with learned id residuals and users from their history
(:mod:`.recommender`), trained on the engine with in-batch negatives, evaluated beside
popularity, item-kNN and ALS (:mod:`.recommend_metrics`, :mod:`.baselines`), and used through
:class:`~graft.tasks.capabilities.Recommends` (:mod:`.recommend_model`).
"""
