"""Classes from their names: a text encoder classifies with no labelled example by how close a
text comes to each class's name (zero-shot classification), and a classifier's head can start
from the same place, so that a few labels improve on zero-shot rather than start from nothing.

Each class becomes a sentence, its *prompt*: the template (by default
``"This text is about {label}."``) with the class's name, or the short description given for
it. The encoder embeds the prompts as it embeds texts (graft's text backbones: mean-pooled
hidden states), and the head's row of a class is its prompt's embedding, scaled so that the
logit of a text is its cosine similarity to the prompt over a temperature (0.05, the scale of
20 sentence-transformers' in-batch-negatives loss uses) times the ratio of the text's norm to
the prompt's. The class with the nearest prompt wins, as a cosine classifier picks it, and
the softmax is as sharp as the encoder's own training made cosine scores.

Class names come as a list, a mapping of names to descriptions, a comma-separated string, or a
text file with one class a line (``name`` or ``name: description``); :func:`read_label_names`
checks them and names the file's line that is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graft.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: The sentence each class's name (or description) is put in before it is embedded.
DEFAULT_TEMPLATE = "This text is about {label}."

#: The cosine similarity is divided by this before the softmax.
TEMPERATURE = 0.05

#: Prompts embedded at once.
_BATCH = 64


@dataclass(frozen=True)
class LabelNames:
    """The classes of a zero-shot classifier and what is embedded for each.

    Attributes:
        classes: the class names, in the order of the head's outputs.
        descriptions: for each class, the text put in the template (its name when none was
            given).
    """

    classes: list[str]
    descriptions: list[str]

    def prompts(self, template: str = DEFAULT_TEMPLATE) -> list[str]:
        """Each class's sentence: ``template`` with its description for ``{label}``."""
        check_template(template)
        return [template.replace("{label}", text) for text in self.descriptions]


def check_template(template: str) -> str:
    """``template`` when it holds ``{label}`` once at least (ConfigError otherwise)."""
    if not isinstance(template, str) or "{label}" not in template:
        raise ConfigError(
            f"--label-template must hold {{label}} where the class name goes, got {template!r}"
        )
    return template


def read_label_names(labels: str | Path | Sequence[str] | Mapping[str, str]) -> LabelNames:
    """The classes ``labels`` names: a list of names, a mapping of names to descriptions, a
    string of comma-separated names, or a text file with one class a line (``name`` or
    ``name: description``; blank lines and lines starting with ``#`` are skipped).

    Raises:
        ConfigError: fewer than two classes, an empty or repeated name, naming the file's
            line where there is one.
    """
    if isinstance(labels, Mapping):
        pairs = [(str(k).strip(), str(v).strip(), None) for k, v in labels.items()]
        source = "--labels"
    elif isinstance(labels, Path | str) and _is_file(labels):
        source = str(labels)
        pairs = _file_pairs(Path(labels))
    elif isinstance(labels, str):
        source = "--labels"
        pairs = [(name.strip(), name.strip(), None) for name in labels.split(",")]
    else:
        source = "--labels"
        pairs = [(str(name).strip(), str(name).strip(), None) for name in labels]
    return _checked(pairs, source)


def _is_file(labels: str | Path) -> bool:
    text = str(labels)
    return "," not in text and "\n" not in text and Path(text).expanduser().is_file()


def _file_pairs(path: Path) -> list[tuple[str, str, int | None]]:
    """(name, description, line number) of each class line of ``path``."""
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--labels {path}: cannot be read as UTF-8 text ({error})") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, description = line.partition(":")
        name = name.strip()
        pairs.append((name, description.strip() if colon else name, number))
    return pairs


def _checked(pairs: list[tuple[str, str, int | None]], source: str) -> LabelNames:
    seen: set[str] = set()
    for name, description, line in pairs:
        where = f"{source}, line {line}" if line is not None else source
        if not name:
            raise ConfigError(f"{where}: a class name is empty")
        if not description:
            raise ConfigError(f"{where}: class {name!r} has an empty description")
        if name in seen:
            raise ConfigError(f"{where}: class {name!r} is named twice")
        seen.add(name)
    if len(pairs) < 2:
        raise ConfigError(
            f"{source}: zero-shot classification needs two classes at least, got {len(pairs)}"
        )
    return LabelNames([p[0] for p in pairs], [p[1] for p in pairs])


def embed_texts(backbone: Any, texts: list[str]) -> torch.Tensor:
    """The features ``backbone`` (a text backbone) gives ``texts``, in evaluation mode."""
    import torch

    from graft.data.transforms import Collate

    collate = Collate(backbone.preprocessing)
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(texts), _BATCH):
            batch, _ = collate([(text, -1) for text in texts[start : start + _BATCH]])
            chunks.append(backbone({k: v.to(device) for k, v in batch.items()}).float().cpu())
    backbone.train(was_training)
    return torch.cat(chunks)


def check_text_backbone(backbone: Any, model: str) -> None:
    """Class names are embedded by the backbone: it must read text (ConfigError otherwise)."""
    if backbone.modality != "text":
        raise ConfigError(
            f"classes from their names need a text encoder; {model} reads {backbone.modality} "
            "(no image-text model ships with graft)"
        )


def start_from_names(
    head: Any, backbone: Any, names: LabelNames, template: str = DEFAULT_TEMPLATE
) -> None:
    """Set ``head``'s linear layer (a :class:`graft.heads.ClassificationHead` with one output
    per class of ``names``) to the zero-shot classifier of ``names`` on ``backbone``."""
    import torch

    if head.linear.out_features != len(names.classes):
        raise ValueError(f"the head has {head.linear.out_features} outputs, not one per class")
    prompts = embed_texts(backbone, names.prompts(template))
    squared = prompts.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-12)
    with torch.no_grad():
        head.linear.weight.copy_(prompts / squared / TEMPERATURE)
        head.linear.bias.zero_()
