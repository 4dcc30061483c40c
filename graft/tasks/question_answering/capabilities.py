"""What question answering has beyond the core of a task (:mod:`graft.tasks.capabilities`):
its answers as ``graft predict`` and ``graft serve`` give them, its metrics and their tables,
and its refusals (class probabilities, export); and the capabilities of
:mod:`graft.tasks.capabilities` they implement (:class:`AnswersCapabilities`' bases)."""

from __future__ import annotations

from typing import Any

from graft.errors import ConfigError
from graft.tasks.base import MetricsTable
from graft.tasks.capabilities import (
    ExportedGraph,
    PredictionText,
    Refused,
    Reported,
    Served,
    Summarised,
)

#: The worst-answered questions kept in the metrics.
WORST = 20


class AnswersCapabilities(Served, PredictionText, Refused, ExportedGraph, Reported, Summarised):
    """Mixed into :class:`graft.tasks.question_answering.task.QuestionAnsweringTask` (which
    gives ``negatives``)."""

    negatives: bool
    generative: bool = False
    #: What ``graft serve`` reads of a request: a question about a posted passage.
    request_fields = ("question", "context")

    def answers(self, outputs: dict) -> list[dict]:
        """Each question's answer: ``{"answer", "score", "start", "end"}`` (a generated
        answer's ``start`` and ``end`` are None: it need not be a span of the context)."""
        from graft.tasks.question_answering.answers import question_answers

        if self.generative:
            from graft.tasks.question_answering.generated import generated_answers

            return generated_answers(outputs)
        return question_answers(outputs, self.negatives)

    def probabilities(self, outputs):
        raise ConfigError("a question-answering model finds answers, not classes: predict()")

    def prediction_records(self, outputs: dict, top_k: int) -> list[dict]:
        return self.answers(outputs)

    def served_answers(self, outputs: dict, top_k: int) -> list[dict]:
        return self.answers(outputs)

    def prediction_text(self, record: dict) -> str:
        if not record["answer"]:
            return f"(no answer) {record['score']:.3f}"
        if record["start"] is None:
            return f"{record['answer']} (generated) {record['score']:.3f}"
        return f"{record['answer']} [{record['start']}:{record['end']}] {record['score']:.3f}"

    def refusal(self, command: str) -> str | None:
        if self.generative and command == "export":
            return "a generative reader writes its answers token by token: export is not built"
        return None

    def metrics(self, outputs: dict, data: Any) -> dict:
        """The official SQuAD exact match and F1 (:func:`~graft.tasks.question_answering.
        squad.squad_scores`) and the :data:`WORST` questions of lowest F1."""
        from graft.tasks.question_answering.report import (
            breakdown,
            length_bucket,
            question_type,
        )
        from graft.tasks.question_answering.squad import (
            best_over,
            exact_match_score,
            f1_score,
            squad_scores,
        )

        answers = self.answers(outputs)
        found = [row["answer"] for row in answers]
        references = [[text for text, _ in answers] for answers in data.answers]
        metrics = squad_scores(found, references)
        pairs = list(zip(found, references, strict=True))
        f1 = [best_over(f1_score, answer, truths) for answer, truths in pairs]
        exact = [best_over(exact_match_score, answer, truths) for answer, truths in pairs]
        metrics["by_question_type"] = breakdown(
            [question_type(q) for q in data.questions], exact, f1
        )
        metrics["by_context_length"] = breakdown(
            [length_bucket(c) for c in data.contexts], exact, f1
        )
        worst = sorted(range(len(f1)), key=lambda i: (f1[i], i))[:WORST]
        metrics["worst"] = [_worst(data, i, answers[i], f1[i]) for i in worst]
        return metrics

    def describe(self) -> str:
        if self.generative:
            return "generated answers"
        return "answer spans" + (", unanswerable questions too" if self.negatives else "")

    def export_record(self) -> dict:
        return {
            "kind": "question-answering",
            "outputs": "start and end logits [windows, length, 2]",
        }

    @classmethod
    def metrics_tables(cls, metrics: dict, classes: Any, title: str) -> list[MetricsTable]:
        rows = [
            [
                "all",
                f"{metrics['exact_match']:.4f}",
                f"{metrics['f1']:.4f}",
                str(metrics["questions"]),
            ]
        ]
        for part, name in (("has_answer", "answerable"), ("no_answer", "unanswerable")):
            if f"{part}_f1" in metrics:
                rows.append(
                    [
                        name,
                        f"{metrics[f'{part}_exact_match']:.4f}",
                        f"{metrics[f'{part}_f1']:.4f}",
                        str(metrics[f"{part}_questions"]),
                    ]
                )
        table = MetricsTable(
            title=f"{title}: exact match {metrics['exact_match']:.4f}, F1 {metrics['f1']:.4f}",
            columns=["questions", "exact match", "F1", "count"],
            rows=rows,
            left=("questions",),
        )
        return [table]

    @classmethod
    def report_sections(cls, metrics: dict, classes: Any, split: str, modality: str | None):
        from graft.tasks.question_answering.report import question_answering_sections

        return question_answering_sections(metrics, split)

    def summary(self, splits: Any) -> dict:
        parts = splits.parts()
        return {"unanswerable": {name: part.unanswerable for name, part in parts.items()}}

    def data_summary(self, splits: Any, backbone: Any) -> dict:
        parts = splits.parts()
        return {
            "modality": "text",
            "task": "question-answering",
            "examples": {name: len(part) for name, part in parts.items()},
            "contexts": {name: len(set(part.contexts)) for name, part in parts.items()},
            "class_counts": {},
            "skipped": {},
            "skipped_count": 0,
        }


def _worst(data: Any, index: int, found: dict, f1: float) -> dict:
    """The record of one of the worst answers; a generated one has no span in the passage."""
    from graft.tasks.question_answering.report import worst_record

    if found["start"] is not None:
        return worst_record(data, index, found, f1)
    return {**worst_record(data, index, {**found, "answer": ""}, f1), "answer": found["answer"]}
