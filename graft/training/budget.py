"""A time budget a fit keeps (``--time-limit 90s``, ``time_limit="10m"``).

The clock starts when the fit starts, so reading the data, building the backbone and caching
its features count against the limit, and so does a reserve for what follows training (the
final evaluation, writing the run). Before training, the cost of one forward pass is measured
on a few training inputs (:func:`forward_seconds`; texts scaled from the timed batch, padded
to its longest, to their mean length, as graft reads them in batches of alike length); from it
the budget refuses a limit too short for even the first phase
(:meth:`TimeBudget.refuse_if_short`: a ``ConfigError`` that says the least it would need) and
reserves time for the evaluation at the end. Once the features are computed, their time
measures the forward pass again (:meth:`TimeBudget.calibrate`), and the guess of a later
phase's epoch follows it; each validation pass measured while training resizes the reserve
for the final evaluation when dearer (:meth:`TimeBudget.observe_validation`: kinds whose
features are not cached measure no forward pass before training).

While a phase trains, :class:`BudgetCallback` measures the cost of a step on its first batches
(weighed by their share of the epoch's work when texts of alike length are batched together:
:func:`probe_shares`) and plans the phase's epochs to fit the time left: it cuts the epochs
(and stretches the learning-rate schedule onto the shorter run, so it still decays to its end),
plans again halfway through the first epoch from its first half and at the end of each
epoch from the epoch measured, validation included (cutting again, or giving back epochs a
moment's load had cut, never more than planned; the schedule goes on from where it was:
:func:`stretch_schedule`), stops at the end of an epoch when the next one would overrun,
and abandons a later phase whose first epoch cannot end in time (:class:`OutOfTime`: the
phase runner then keeps the weights it had). The first phase always trains at least one
epoch, so a fit with a limit always ends with a model.
A phase followed by others leaves them the guess of one epoch each (all the time left when
even that does not fit), so a cheap head phase cannot starve the fine-tuning that follows;
where their epochs are not guessed (kinds whose inputs are not cached, as detection's), it
keeps for them, once its own epoch is measured, their planned epochs' share of the time left
(:meth:`TimeBudget.keep_for_later`), so a short limit cuts every phase alike.

What was cut (phases skipped, epochs cut, the time used) is logged and recorded
(:meth:`TimeBudget.record`, ``summary.json``'s ``time_limit``).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np

from graft.errors import ConfigError

log = logging.getLogger("graft")

#: Seconds a duration's unit stands for (no unit: seconds).
UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(h|min|m|sec|s)?", re.IGNORECASE)
#: Seconds always kept for the end of a fit (writing the model, its metrics and report).
END_SECONDS = 3.0
#: Training steps of a phase timed (after a first, warm-up step) before its epochs are planned.
PROBE_STEPS = 3
#: Steps of a first epoch from which its first half is timed again, halfway, to plan once more.
HALFWAY_STEPS = 4 * PROBE_STEPS
#: Predictions of an epoch's cost are multiplied by this before they are trusted.
MARGIN = 1.1
#: Features computed at once that measure a forward pass better than the first batch did.
AT_SCALE = 64
#: A training step costs about this many forward passes (forward, then backward at about two).
STEP_PER_FORWARD = 3.0
#: An epoch of a later phase that trains the backbone, over one of a phase that runs it frozen
#: on every batch (kinds whose inputs are not cached: detection, segmentation): the backbone's
#: backward pass besides. The profiles of default fits measured 1.28 (detection) and 1.12
#: (segmentation); used only while the later phase's epoch is not guessed.
LATER_EPOCH_COST = 1.25


def parse_duration(value: Any, option: str = "time-limit") -> float:
    """Seconds of a duration: a number of seconds, or text like ``90s``, ``10m``, ``2h``,
    ``1h30m``, ``1.5h`` or ``45`` (seconds).

    Raises:
        ConfigError: naming ``--option``, for anything else or a duration that is not positive.
    """
    problem = f"--{option} must be a duration like 90s, 10m or 2h (or seconds), got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(problem)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = list(_PART.finditer(text))
        if not text or "".join(p.group(0) for p in parts) != text:
            raise ConfigError(problem)
        if len(parts) > 1 and any(p.group(2) is None for p in parts):
            raise ConfigError(problem)  # 1h30 is ambiguous: say 1h30m
        seconds = sum(float(p.group(1)) * UNITS[(p.group(2) or "").lower()] for p in parts)
    else:
        raise ConfigError(problem)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"--{option} must be positive, got {value!r}")
    return seconds


def describe(seconds: float) -> str:
    """``95.3`` -> ``1m36s``, ``42.0`` -> ``42s``, ``3600`` -> ``1h``: a duration as
    ``--time-limit`` takes it, rounded up to the second."""
    hours, rest = divmod(math.ceil(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


class OutOfTime(Exception):  # noqa: N818  (a signal between the callback and the runner)
    """The first epoch of a later phase cannot end inside the limit: the phase is abandoned."""


@dataclass
class PhaseBudget:
    """What the budget allows one phase: whether it is the fit's first (it always trains an
    epoch), how many phases follow it and ``later_cost``, the guessed cost of an epoch of each
    of them, guessed afresh each time it is asked (a phase's own features, once computed,
    measure the forward pass better than the guess it was admitted with; it leaves them that),
    the epochs the later phases plan (``later_epochs``) and, where their cost is not guessed,
    the seconds kept for them once this phase's epoch is measured (``later_reserve``), the
    epochs planned and run, and what was cut."""

    name: str
    first: bool
    later: int
    planned: int
    later_cost: Callable[[], float] = field(default=lambda: 0.0)
    later_epochs: int = 0
    later_reserve: float | None = None
    ran: int = 0
    cut: str | None = None


@dataclass
class TimeBudget:
    """The clock and the plan of a fit with a time limit (see the module docstring).

    Attributes:
        limit: seconds the whole fit may take.
        given: the limit as the user gave it (``--time-limit 10m``).
        started: when the fit started (``time.monotonic``).
        forward: measured seconds of one input's forward pass (None: not measured).
        end_seconds: what the end of the fit is expected to cost (evaluation, writing).
        phases: what the budget allowed each phase (``current``: the one training).
        evaluated: inputs the final evaluation passes through the backbone.
        evaluation: measured seconds of one input's validation while training (0: none yet).
    """

    limit: float
    given: Any = None
    started: float = field(default_factory=time.monotonic)
    forward: float | None = None
    end_seconds: float = END_SECONDS
    phases: dict[str, PhaseBudget] = field(default_factory=dict)
    current: PhaseBudget | None = None
    evaluated: int = 0
    evaluation: float = 0.0

    @classmethod
    def of(cls, time_limit: Any, started: float | None = None) -> TimeBudget | None:
        """The budget of ``time_limit`` (None: no limit, no budget)."""
        if time_limit is None:
            return None
        budget = cls(parse_duration(time_limit), given=time_limit)
        if started is not None:
            budget.started = started
        return budget

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        """Seconds left for training: the limit less the time used and the end's reserve."""
        return self.limit - self.elapsed() - self.end_seconds

    def room(self) -> float:
        """Seconds the current phase may still use: what is left less an epoch of each later
        phase when their cost is guessed (all of it when even that leaves nothing), else less
        the reserve kept for them once this phase's epoch was measured
        (:meth:`keep_for_later`), else its share of what is left."""
        phase, left = self.current, self.left()
        if phase is None or not phase.later:
            return left
        later = phase.later_cost()
        if later > 0:
            spare = left - MARGIN * later
            return spare if spare > 0 else left
        if phase.later_reserve is not None:
            return left - phase.later_reserve
        return left / (1 + phase.later)

    def keep_for_later(self, epoch: float) -> None:
        """Where the later phases' epochs are not guessed (kinds whose inputs are not cached),
        keep for them, from one epoch of the current phase measured at ``epoch`` seconds, the
        time their planned epochs need at :data:`LATER_EPOCH_COST` times that, or, when the
        plan does not fit what is left, their share of it by planned work: a short limit cuts
        every phase alike instead of letting the first (a frozen backbone's warm-up) take half
        of it before fine-tuning starts."""
        phase = self.current
        if phase is None or not phase.later_epochs or phase.later_reserve is not None:
            return
        if phase.later_cost() > 0:  # guessed: room() leaves them that
            return
        own = phase.planned * epoch
        later = phase.later_epochs * LATER_EPOCH_COST * epoch
        left = self.left()
        phase.later_reserve = later if own + later <= left else left * later / (own + later)

    # Before training ----------------------------------------------------------------------------

    def reserve_end(self, evaluated_inputs: int) -> None:
        """Reserve, for the end of the fit, ``evaluated_inputs`` forward passes (the final
        evaluation through the backbone) besides the fixed :data:`END_SECONDS`."""
        self.evaluated = evaluated_inputs
        passes = max(self.forward or 0.0, self.evaluation) * evaluated_inputs
        self.end_seconds = END_SECONDS + 0.02 * self.limit + MARGIN * passes

    def calibrate(self, seconds: float, inputs: int) -> None:
        """A forward pass measured at scale (``inputs`` features computed in ``seconds``):
        it replaces the first guess (one batch's) when over :data:`AT_SCALE` inputs, or when
        dearer from at least 16, and the end's reserve follows."""
        if inputs < 16:
            return
        measured = seconds / inputs
        if inputs >= AT_SCALE or measured > (self.forward or 0.0):
            self.forward = measured
            self.reserve_end(self.evaluated)

    def observe_validation(self, seconds: float, inputs: int) -> None:
        """A validation pass over ``inputs`` examples measured in ``seconds`` while training:
        the final evaluation reads its data the same way, so its reserve follows when this is
        dearer than the forward pass measured before (or when none was: kinds whose features
        are not cached, whose evaluation was reserved nothing)."""
        if inputs > 0 and seconds / inputs > self.evaluation:
            self.evaluation = seconds / inputs
            self.reserve_end(self.evaluated)

    def refuse_if_short(self, first_phase_seconds: float) -> None:
        """Refuse (before training) a limit that cannot hold the first phase's shortest run,
        ``first_phase_seconds``, with the evaluation and writing that follow."""
        spent = self.elapsed()
        needed = spent + MARGIN * first_phase_seconds + self.end_seconds
        if needed <= self.limit:
            return
        raise ConfigError(
            f"--time-limit {self.given} is too short for this fit: it needs at least "
            f"{describe(needed)} (reading the data and building the model took {spent:.1f}s, "
            f"the first phase needs about {first_phase_seconds:.1f}s and evaluating and "
            f"writing the run about {self.end_seconds:.1f}s); nothing was trained"
        )

    # Phases -------------------------------------------------------------------------------------

    def admits(
        self,
        name: str,
        epochs: int,
        position: tuple[int, int],
        estimate: float,
        later_cost: Callable[[], float] = lambda: 0.0,
        later_epochs: int = 0,
    ) -> bool:
        """Whether phase ``position = (index, count)`` starts; ``estimate``: an optimistic
        guess of one epoch's seconds of it, ``later_cost`` one of an epoch of each later phase
        (0: unknown), asked again as the phase trains, ``later_epochs`` the epochs the later
        phases plan. The first always starts; a later one is skipped (and recorded) when even
        its guess does not fit the time it may use."""
        index, count = position
        self.current = PhaseBudget(
            name, index == 0, count - index - 1, epochs, later_cost, later_epochs
        )
        self.phases[name] = self.current
        if self.current.first or estimate < self.room():
            return True
        self.skip(f"one epoch would need about {estimate:.0f}s, {max(0.0, self.room()):.0f}s left")
        return False

    def skip(self, reason: str) -> None:
        """Record that the current phase was skipped (or abandoned) for ``reason``."""
        phase = self.current
        if phase is None:
            return
        phase.ran, phase.cut = 0, f"skipped: {reason}"
        log.warning("--time-limit %s: the %s phase is skipped (%s)", self.given, phase.name, reason)

    def finish_phase(self, ran: int) -> None:
        """Record the epochs the current phase ran; the next phase is planned afresh."""
        if self.current is not None:
            self.current.ran = ran
        self.current = None

    def callback(self, train_loader: Any, val_loader: Any) -> BudgetCallback | None:
        """The Lightning callback that keeps the current phase inside the budget (None outside
        a planned phase)."""
        if self.current is None:
            return None
        share = validation_share(train_loader, val_loader)
        return BudgetCallback(self, self.current, share, _length(val_loader))

    # What it did --------------------------------------------------------------------------------

    def record(self) -> dict:
        """``summary.json``'s ``time_limit``: the limit, the time used, each phase's epochs
        (planned and run) and what was cut."""
        cuts = [f"{p.name}: {p.cut}" for p in self.phases.values() if p.cut]
        return {
            "limit": self.given,
            "limit_seconds": round(self.limit, 3),
            "used_seconds": round(self.elapsed(), 3),
            "reserved_for_end_seconds": round(self.end_seconds, 3),
            "phases": {
                p.name: {"planned_epochs": p.planned, "epochs": p.ran, "cut": p.cut}
                for p in self.phases.values()
            },
            "skipped_phases": [p.name for p in self.phases.values() if p.ran == 0],
            "cut": cuts,
        }

    def summary_line(self) -> str:
        """One line for the console: what the limit cut, and the time used so far."""
        cuts = [f"{p.name} {p.cut}" for p in self.phases.values() if p.cut]
        what = "; ".join(cuts) if cuts else "nothing was cut"
        return f"--time-limit {self.given}: {what} ({self.elapsed():.1f}s used so far)"


def _length(loader: Any) -> int:
    """The examples ``loader`` reads (0 when unknown or None)."""
    try:
        return len(loader.dataset)
    except (TypeError, AttributeError):
        return 0


def validation_share(train_loader: Any, val_loader: Any) -> float:
    """The guessed cost of a validation pass as a share of a training epoch: a forward pass of
    each validation input against a forward and backward pass of each training one."""
    try:
        train = len(train_loader.dataset)
        val = len(val_loader.dataset) if val_loader is not None else 0
    except (TypeError, AttributeError):
        return 0.3
    return val / max(1, train) / STEP_PER_FORWARD


class BudgetCallback(L.Callback):
    """Keeps one phase inside the budget: plans its epochs from its first steps, stops at the
    end of an epoch when the next would overrun (see the module docstring). Built by
    :meth:`TimeBudget.callback`."""

    def __init__(
        self, budget: TimeBudget, phase: PhaseBudget, val_share: float, val_inputs: int = 0
    ):
        self.budget, self.phase, self.val_share = budget, phase, val_share
        self.val_inputs = val_inputs  # the examples a validation pass reads
        self.planned = self.halfway_planned = False
        self._epoch_start = self._probe_start = self._validation_start = time.monotonic()
        self.epoch_seconds: float | None = None

    def on_train_epoch_start(self, trainer, module) -> None:
        self._epoch_start = time.monotonic()

    def on_validation_start(self, trainer, module) -> None:
        self._validation_start = time.monotonic()

    def on_validation_end(self, trainer, module) -> None:
        seconds = time.monotonic() - self._validation_start
        self.budget.observe_validation(seconds, self.val_inputs)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        steps = trainer.num_training_batches
        if not math.isfinite(steps):
            return
        if not self.planned:
            if batch_idx == 0:  # the first step warms up (allocations, workers): not timed
                self._probe_start = time.monotonic()
            elif batch_idx >= PROBE_STEPS:
                done, timed = probe_shares(trainer, batch_idx, steps)
                self._plan_from(trainer, module, self._probe_start, done, timed)
        elif (
            trainer.current_epoch == 0
            and not self.halfway_planned
            and batch_idx + 1 == steps // 2
            and steps >= HALFWAY_STEPS
        ):
            # half the first epoch measures it far better than the probe's few steps did
            self.halfway_planned = True
            done, _ = probe_shares(trainer, batch_idx, steps)
            self._plan_from(trainer, module, self._epoch_start, done, done)

    def _plan_from(self, trainer, module, since: float, done: float, timed: float) -> None:
        """Plan from the steps timed since ``since``, ``timed`` of the epoch's training work,
        ``done`` of it done so far."""
        training = (time.monotonic() - since) / timed  # an epoch's training
        epoch = training * (1 + self.val_share)
        rest_of_first = training * (1 - done + self.val_share)
        self._plan(trainer, module, epoch, rest_of_first)

    def on_train_epoch_end(self, trainer, module) -> None:
        """Plan again from the epoch just measured (validation included, which the probe only
        guessed; a probe of three steps also catches a moment's load): the phase runs the
        epochs that fit, never more than planned, and the schedule is stretched again so it
        still ends with the last; it stops when not even the next one fits."""
        self.epoch_seconds = time.monotonic() - self._epoch_start  # validation included
        done = trainer.current_epoch + 1
        if not self.planned:  # an epoch of fewer steps than the probe: plan from it
            self._plan(trainer, module, self.epoch_seconds, 0.0)
        if done >= trainer.max_epochs:
            return
        fits = self._epochs_that_fit(trainer, self.budget.room(), self.epoch_seconds, 0.0)
        if fits <= done:
            trainer.should_stop = True
            self._note(f"stopped after {done} of {self.phase.planned} epochs (out of time)")
        else:
            self._run_epochs(trainer, fits, f"{self.epoch_seconds:.1f}s each, measured")

    def _plan(self, trainer, module, epoch: float, rest_of_first: float) -> None:
        """Fit the phase to the epochs its room holds, from ``epoch``'s predicted seconds and
        the ``rest_of_first`` epoch's; abandon a later phase whose first epoch cannot end."""
        self.planned = True
        self.budget.keep_for_later(epoch)
        room = self.budget.room()
        if MARGIN * rest_of_first > room and trainer.current_epoch == 0:
            if not self.phase.first:
                raise OutOfTime(
                    f"its first epoch would end in about {rest_of_first:.0f}s, {room:.0f}s left"
                )
            fits = 1
        else:
            fits = self._epochs_that_fit(trainer, room, epoch, rest_of_first)
        self._run_epochs(trainer, fits, f"{epoch:.1f}s each")

    @staticmethod
    def _epochs_that_fit(trainer, room: float, epoch: float, rest_of_current: float) -> int:
        """Epochs of the phase, the current one included, that end within ``room`` seconds:
        the ``rest_of_current`` epoch's seconds, then whole epochs of ``epoch``, each with the
        margin."""
        after_this = max(0.0, room - MARGIN * rest_of_current)
        return trainer.current_epoch + 1 + int(after_this // (MARGIN * epoch))

    def _run_epochs(self, trainer, fits: int, how: str) -> None:
        """Run ``fits`` epochs (never more than planned), the schedule stretched onto them;
        ``how`` says what an epoch was found to cost."""
        fits = min(fits, self.phase.planned)
        if fits == trainer.max_epochs:
            return
        stretch_schedule(trainer, trainer.max_epochs, fits)
        trainer.fit_loop.max_epochs = fits
        if fits < self.phase.planned:
            self._note(f"cut from {self.phase.planned} to {fits} epochs (about {how})")
        else:  # an earlier cut was a moment's load: all the planned epochs fit again
            self.phase.cut = None

    def _note(self, text: str) -> None:
        self.phase.cut = text
        log.warning("--time-limit %s: the %s phase %s", self.budget.given, self.phase.name, text)


def probe_shares(trainer: Any, batch_idx: int, steps: int) -> tuple[float, float]:
    """The shares of a training epoch's work held by its batches up to ``batch_idx`` (done)
    and by those the probe timed (all but the first): by the work of each batch where the
    sampler weighs them (:meth:`graft.training.sampling.LengthGroupedBatches.batch_work`:
    texts of alike length, a batch of short ones far cheaper than one of long ones), else by
    their count."""
    loader = getattr(trainer, "train_dataloader", None)
    work = getattr(getattr(loader, "batch_sampler", None), "batch_work", None)
    if callable(work):
        costs = work()
        total = sum(costs)
        if len(costs) == steps and total > 0:
            return sum(costs[: batch_idx + 1]) / total, sum(costs[1 : batch_idx + 1]) / total
    return (batch_idx + 1) / steps, batch_idx / steps


def stretch_schedule(trainer: Any, planned_epochs: int, epochs: int) -> None:
    """Fit the rest of each per-step ``LambdaLR`` schedule of ``trainer`` (graft's warm-up and
    cosine decay) onto the steps left until ``epochs`` instead of ``planned_epochs``: from the
    step it has reached, ``now``, step ``s`` takes the factor of step
    ``now + (s - now) * (planned - now) / (epochs - now)``, so the shortened phase goes on from
    the factor it has and still ends at the schedule's end (stretched again when cut again)."""
    import torch

    batches = trainer.num_training_batches
    if not math.isfinite(batches):  # an iterable of unknown length: no step to map onto
        return
    per_epoch = math.ceil(batches / getattr(trainer, "accumulate_grad_batches", 1))
    end, new_end = planned_epochs * per_epoch, epochs * per_epoch
    for config in trainer.lr_scheduler_configs:
        scheduler = config.scheduler
        if config.interval != "step" or not isinstance(
            scheduler, torch.optim.lr_scheduler.LambdaLR
        ):
            continue
        now = max(0, scheduler.last_epoch)
        if new_end <= now:
            continue
        scheduler.lr_lambdas = [
            _stretched(f, now, (end - now) / (new_end - now)) for f in scheduler.lr_lambdas
        ]


def _stretched(factor: Callable[[int], float], now: int, ratio: float) -> Callable[[int], float]:
    """``factor`` as it is up to step ``now``, ``ratio`` times faster after it (a closure, not
    an object: ``LambdaLR.state_dict`` would save an object's attributes into checkpoints)."""
    return lambda step: factor(step if step <= now else now + (step - now) * ratio)


def forward_seconds(backbone: Any, data: Any, batch_size: int) -> float | None:
    """Measured seconds of one input's forward pass through the frozen ``backbone`` (reading
    and preprocessing included), on up to ``batch_size`` training inputs after a warm-up on
    two; None when ``data`` is too small to tell."""
    from graft.features import extract_features

    size = min(len(data), max(4, batch_size))
    if size < 4:
        return None
    extract_features(backbone, data.subset(list(range(2))), 2)
    start = time.perf_counter()
    extract_features(backbone, data.subset(list(range(size))), size)
    return (time.perf_counter() - start) / size * padding_share(backbone, data, size)


#: Texts whose sub-tokens are counted to tell their mean length (a seeded sample of a larger set).
COUNTED_TEXTS = 2000


def padding_share(backbone: Any, data: Any, size: int) -> float:
    """What an input of ``data`` costs the encoder, as a share of one of its first ``size``
    read as one batch: the mean of the texts' sub-tokens over the longest of those ``size``,
    since the timed batch pads every text to its longest and graft reads texts in batches of
    alike length (on 8,000 sst2 sentences the timed batch made a text 2.7x dearer than the
    extraction of all of them measured). 1.0 for inputs other than plain texts."""
    from graft.backbones.base import TextPreprocessing
    from graft.data.transforms import longest_first, token_counts

    items = list(data.items)
    preprocessing = getattr(backbone, "preprocessing", None)
    if not isinstance(preprocessing, TextPreprocessing) or longest_first(items) is None:
        return 1.0
    if len(items) > COUNTED_TEXTS:
        chosen = np.random.default_rng(0).choice(len(items), COUNTED_TEXTS, replace=False)
        counted = [items[i] for i in chosen]
    else:
        counted = items
    counts = token_counts([*items[:size], *counted], preprocessing)  # one tokenizer load
    longest, mean = max(counts[:size]), float(np.mean(counts[size:]))
    return min(1.0, mean / max(1, longest))


def uncached_share(cache: Any, backbone: Any, parts: list[Any]) -> float:
    """The share of the inputs of ``parts`` (datasets) whose features ``cache`` (a
    :class:`graft.features.FeatureCache`) does not hold yet, read from its shards' keys alone."""
    from safetensors import SafetensorError, safe_open

    folder = cache.root / backbone.fingerprint()[:24]
    stored: set[bytes] = set()
    for shard in sorted(folder.glob("shard-*.safetensors")) if folder.is_dir() else []:
        try:
            with safe_open(shard, "pt") as handle:
                stored.update(key.tobytes() for key in handle.get_tensor("keys").numpy())
        except (SafetensorError, OSError, KeyError):
            continue  # the fit's own read of the cache says what is wrong with it
    keys = [key for part in parts for key in part.content_keys()]
    if not stored or not keys:
        return 1.0
    return sum(key not in stored for key in keys) / len(keys)
