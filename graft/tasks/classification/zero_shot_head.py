"""A multiclass head that starts as the zero-shot classifier of its class names
(``--head-init labels``, :mod:`graft.label_prompts`), so that a few labels improve on
zero-shot rather than start from nothing; the fit then keeps the untrained model when no
phase beats it on validation."""

from __future__ import annotations

import logging
from typing import Any

from graft.errors import ConfigError
from graft.label_prompts import LabelNames, check_text_backbone, read_label_names, start_from_names
from graft.tasks.classification.options import ClassificationOptions

log = logging.getLogger("graft")


def start_from_class_names(head: Any, backbone: Any, classes: list[str], config: Any) -> bool:
    """Start ``head`` from the names of ``classes`` when ``config`` asks (``head_init``
    ``labels``); whether it did."""
    options = ClassificationOptions.of(config)
    if options.head_init != "labels":
        return False
    check_text_backbone(backbone, config.model)
    names = class_names(classes, options.label_descriptions)
    start_from_names(head, backbone, names, options.label_template)
    log.info("head started from the class names (zero-shot, template %r)", options.label_template)
    return True


def class_names(classes: list[str], descriptions: str | None) -> LabelNames:
    """What is embedded for each of ``classes``: its name, or its line of the
    ``descriptions`` file (every class must have one; others are refused)."""
    if descriptions is None:
        return LabelNames(list(classes), list(classes))
    given = read_label_names(descriptions)
    described = dict(zip(given.classes, given.descriptions, strict=True))
    missing = [c for c in classes if c not in described]
    extra = [c for c in given.classes if c not in classes]
    if missing or extra:
        wrong = f"no line for class(es) {', '.join(missing)}" if missing else ""
        if extra:
            wrong += ("; " if wrong else "") + f"class(es) not in the data: {', '.join(extra)}"
        raise ConfigError(f"--label-descriptions {descriptions}: {wrong}")
    return LabelNames(list(classes), [described[c] for c in classes])
