"""The options of a classification fit: where the head starts.

Declared once with :func:`graft.options.option`: ``graft fit --help`` lists them in their own
panel and ``graft.fit(..., head_init="labels")`` takes them. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from graft.errors import ConfigError
from graft.label_prompts import DEFAULT_TEMPLATE
from graft.options import KindOptions, option

#: Where a classification head may start.
HEAD_INITS = ("random", "labels")


@dataclass
class ClassificationOptions(KindOptions):
    """Options of the label-column kinds (multiclass, multi-label, regression, several tasks).

    Attributes:
        head_init: ``random`` (the default), or ``labels``: a multiclass head on a text
            backbone starts as the zero-shot classifier of the class names
            (:mod:`graft.label_prompts`), so that training improves on zero-shot.
        label_template: the sentence a class name is put in before it is embedded.
        label_descriptions: a text file with one class a line (``name: description``), or
            comma-separated names, to embed instead of the bare class names.
    """

    head_init: str = option(
        "random",
        "Where the head starts: random, or labels (multiclass text: the zero-shot classifier "
        "of the class names, so a few labels improve on zero-shot).",
        panel="Classification",
    )
    label_template: str = option(
        DEFAULT_TEMPLATE,
        "With --head-init labels: the sentence each class name is put in ({label}).",
        panel="Classification",
    )
    label_descriptions: str | None = option(
        None,
        "With --head-init labels: a file with one 'class: description' a line, embedded "
        "instead of the bare class names.",
        panel="Classification",
    )

    def validate(self) -> ClassificationOptions:
        if self.head_init not in HEAD_INITS:
            raise ConfigError(
                f"--head-init must be one of {', '.join(HEAD_INITS)}, got {self.head_init!r}"
            )
        if "{label}" not in self.label_template:
            raise ConfigError(
                "--label-template must hold {label} where the class name goes, "
                f"got {self.label_template!r}"
            )
        return self
