"""The optimiser every phase uses: fused AdamW where PyTorch has the kernel, the warm-up and
cosine schedule; and the paced resume checkpoint of the engine."""

from types import SimpleNamespace

import pytest
import torch

from graft.training import engine
from graft.training.optim import adamw, optimizer_config, warmup_cosine


def test_adamw_is_fused_on_the_cpu_and_steps_like_the_for_loop_update():
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(50, 20)), torch.nn.Parameter(torch.randn(20))]
    copies = [torch.nn.Parameter(w.detach().clone()) for w in weights]
    fused = adamw([{"params": weights, "lr": 1e-2}], weight_decay=0.01)
    plain = torch.optim.AdamW([{"params": copies, "lr": 1e-2}], weight_decay=0.01)
    assert fused.defaults["fused"] is True and not plain.defaults["fused"]
    for _ in range(3):
        for w, c in zip(weights, copies, strict=True):
            w.grad = torch.ones_like(w) * 0.3
            c.grad = torch.ones_like(c) * 0.3
        fused.step()
        plain.step()
    for w, c in zip(weights, copies, strict=True):
        torch.testing.assert_close(w, c)


def test_adamw_falls_back_where_there_is_no_fused_kernel():
    meta = torch.nn.Parameter(torch.empty(3, device="meta"))
    assert not adamw([{"params": [meta], "lr": 1e-3}], 0.0).defaults["fused"]


def test_the_schedule_warms_up_linearly_then_decays_to_zero():
    schedule = warmup_cosine(total_steps=10, warmup_fraction=0.2)
    assert [schedule(s) for s in (0, 1)] == [0.5, 1.0]
    assert schedule(2) == pytest.approx(1.0) and schedule(9) < 0.05 and schedule(10) == 0.0
    config = optimizer_config(
        [{"params": [torch.nn.Parameter(torch.ones(2))], "lr": 1.0}], 0, 10, 0.2
    )
    assert config["lr_scheduler"]["interval"] == "step"
    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(0.5)


def test_the_resume_checkpoint_is_paced(monkeypatch):
    saved = []
    monkeypatch.setattr(
        engine.ModelCheckpoint,
        "on_train_epoch_end",
        lambda self, t, m: saved.append(t.current_epoch),
    )
    now = [0.0]
    monkeypatch.setattr(engine.time, "monotonic", lambda: now[0])
    checkpoint = engine.PacedCheckpoint(interval=60.0, dirpath=None)
    for epoch, seconds in enumerate([0, 30, 59, 61, 62]):  # epochs end at these seconds
        now[0] = seconds  # saved after the first, once 60 s passed, and after the last
        trainer = SimpleNamespace(current_epoch=epoch, max_epochs=5, should_stop=False)
        checkpoint.on_train_epoch_end(trainer, None)
    assert saved == [0, 3, 4]
    stopped = SimpleNamespace(current_epoch=1, max_epochs=50, should_stop=True)
    checkpoint.on_train_epoch_end(stopped, None)  # an early stop is a final epoch too
    assert saved == [0, 3, 4, 1]
