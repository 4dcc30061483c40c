"""The stages of :meth:`graft.estimator.GraftEstimator.fit` that the estimator orchestrates.

- :mod:`graft.fitting.inputs`: what a fit reads (:class:`FitData`), the splits and the task.
- :mod:`graft.fitting.training`: the training modules, loaders and engine of a fit; training
  the strategy's phases; the learning-rate range test.
- :mod:`graft.fitting.results`: the end of a fit: tuning and metrics, the cross-validated
  estimate, the from-scratch baseline, the summary and the report.
"""
