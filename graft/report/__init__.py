"""The run report: one self-contained ``report.html`` (:mod:`graft.report.page`), drawn with
the helpers of :mod:`graft.report.html`; each kind of task adds its own sections
(:class:`graft.tasks.capabilities.Reported`, such as :mod:`graft.tasks.classification.report`)."""
