"""The shared training loop: learning, exact resume after SIGKILL, DDP, EMA, early stopping,
gradient clipping. Tiny models on random data, CPU only."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset
from train_tiny import NoisyRegression, make_model, run

from avtool.core.errors import ConfigError, StaleOutputError
from avtool.train import checkpoint
from avtool.train.ema import EMATeacher
from avtool.train.loop import TrainConfig, fit

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "train_tiny.py"


@pytest.fixture
def one_thread():
    """Match the script's thread count, so in-process and subprocess runs compute alike."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def without_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def regression(n: int = 128, seed: int = 0) -> TensorDataset:
    """y = x·w with one fixed w; `seed` draws the inputs (a validation set differs by seed)."""
    w = torch.randn(8, 1, generator=torch.Generator().manual_seed(1234))
    x = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(x, x @ w)


def test_training_reduces_the_loss_and_writes_its_files(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="avtool.train")
    config = TrainConfig(epochs=8, batch_size=16, lr=1e-2, seed=3, device="cpu", log_every=4)
    result = fit(
        make_model(dropout=0.0),
        regression(),
        config,
        tmp_path,
        loss_fn=nn.functional.mse_loss,
        val_set=regression(32, seed=1),
    )
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == list(range(1, 9))
    assert records[-1]["train_loss"] < 0.2 * records[0]["train_loss"]
    assert records[-1]["val_loss"] < 0.2 * records[0]["val_loss"]
    assert {"epoch", "step", "train_loss", "val_loss", "lr", "seconds"} <= records[0].keys()
    assert result.epochs_run == 8 and not result.stopped_early
    assert result.monitor == "val_loss" and result.last_metrics == records[-1]
    assert {p.name for p in tmp_path.iterdir()} == {
        "last.pt",
        "best.pt",
        "final.pt",
        "done.json",
        "metrics.jsonl",
    }
    # Not a terminal: plain progress lines every log_every steps.
    assert any("epoch 1/8 step 4/8" in message for message in caplog.messages)


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    config = TrainConfig(epochs=3, batch_size=16, lr=1e-2, device="cpu", bf16=True)
    result = fit(
        make_model(dropout=0.0), regression(), config, tmp_path, loss_fn=nn.functional.mse_loss
    )
    history = result.history
    assert result.monitor == "train_loss"
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(out)
    finally:
        torch.set_num_threads(before)
    return out


@pytest.mark.parametrize(
    ("kill_at", "every_steps"),
    [(11, None), (11, 3)],
    ids=["epoch-checkpoints", "step-checkpoints"],
)
def test_resume_after_sigkill_is_bit_exact(
    tmp_path, uninterrupted, one_thread, caplog, kill_at, every_steps
):
    # 4 steps per epoch: step 11 is inside epoch 3, after an epoch-end checkpoint at step 8
    # and, with step checkpoints, a mid-epoch one at step 9.
    command = [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--kill-at", str(kill_at)]
    if every_steps:
        command += ["--checkpoint-every-steps", str(every_steps)]
    killed = subprocess.run(command, env=script_env(), capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert not (tmp_path / "done.json").exists()
    state = checkpoint.load(tmp_path / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == ((2, 1) if every_steps else (2, 0))

    caplog.set_level(logging.INFO, logger="avtool.train")
    result = run(tmp_path, checkpoint_every_steps=every_steps)
    assert any("resumed from" in message for message in caplog.messages)

    reference = checkpoint.load(uninterrupted / "final.pt")
    final = checkpoint.load(tmp_path / "final.pt")
    assert_same_state(final["model"], reference["model"])
    assert_same_state(final["teacher"], reference["teacher"])
    optimizer = checkpoint.load(tmp_path / "last.pt")["optimizer"]["state"]
    reference_optimizer = checkpoint.load(uninterrupted / "last.pt")["optimizer"]["state"]
    assert optimizer.keys() == reference_optimizer.keys()
    for param in optimizer:
        assert_same_state(optimizer[param], reference_optimizer[param])
    assert without_seconds(read_metrics(tmp_path)) == without_seconds(read_metrics(uninterrupted))
    assert result.best_epoch == json.loads((uninterrupted / "done.json").read_text())["best_epoch"]


def test_a_finished_run_is_not_rerun_and_a_changed_config_is_refused(tmp_path):
    config = TrainConfig(epochs=2, batch_size=16, device="cpu", ema_decay=0.5)
    first = fit(make_model(), regression(), config, tmp_path, loss_fn=nn.functional.mse_loss)

    def must_not_train(*_):
        raise AssertionError("a finished run trained again")

    model = make_model(seed=99)
    again = fit(model, regression(), config, tmp_path, step_fn=must_not_train)
    assert again == first
    assert_same_state(model.state_dict(), checkpoint.load(tmp_path / "final.pt")["model"])
    assert_same_state(again.teacher.state_dict(), first.teacher.state_dict())
    changed = TrainConfig(epochs=2, batch_size=16, device="cpu", ema_decay=0.5, lr=0.5)
    with pytest.raises(StaleOutputError, match="lr"):
        fit(make_model(), regression(), changed, tmp_path, loss_fn=nn.functional.mse_loss)


@pytest.mark.slow
def test_torchrun_two_processes_resume_and_match_one(tmp_path, one_thread):
    out, audit = tmp_path / "ddp", tmp_path / "audit"
    audit.mkdir()
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", str(SCRIPT)]
    command += ["--out", str(out), "--dropout", "0", "--jitter", "0"]
    command += ["--checkpoint-every-steps", "3"]
    # Both ranks die inside epoch 3; the relaunch resumes from the mid-epoch checkpoint.
    killed = subprocess.run(
        [*command, "--kill-at", "11"], env=script_env(), capture_output=True, timeout=300
    )
    assert killed.returncode != 0
    assert checkpoint.load(out / "last.pt")["global_step"] == 9
    launched = subprocess.run(
        [*command, "--audit-dir", str(audit)],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]

    assert len(read_metrics(out)) == 5
    assert {p.name for p in out.iterdir()} == {
        "last.pt",
        "best.pt",
        "final.pt",
        "done.json",
        "metrics.jsonl",
    }
    rank0 = json.loads((audit / "writes-rank0.json").read_text())
    rank1 = json.loads((audit / "writes-rank1.json").read_text())
    assert any(line.endswith(" last.pt") for line in rank0)
    assert rank1 == []

    # Same global batch (16 = 2 × 8), same data order: one process ends at the same weights,
    # up to the order of floating-point additions in the gradient average.
    single = run(tmp_path / "single", dropout=0.0, jitter=0.0, checkpoint_every_steps=3)
    ddp_final = checkpoint.load(out / "final.pt")["model"]
    single_final = checkpoint.load(tmp_path / "single" / "final.pt")["model"]
    for name, value in single_final.items():
        torch.testing.assert_close(ddp_final[name], value, rtol=1e-5, atol=1e-6)
    ddp_records = read_metrics(out)
    for ddp_record, record in zip(ddp_records, single.history, strict=True):
        assert ddp_record["train_loss"] == pytest.approx(record["train_loss"], rel=1e-5)
        assert ddp_record["val_loss"] == pytest.approx(record["val_loss"], rel=1e-5)


def test_ema_teacher_is_the_moving_average_after_one_step(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # One epoch of one batch: exactly one optimiser step and one teacher update.
    config = TrainConfig(epochs=1, batch_size=64, device="cpu", ema_decay=0.75, restore_best=False)
    result = fit(model, regression(64), config, tmp_path, loss_fn=nn.functional.mse_loss)
    student, teacher = model.state_dict(), result.teacher.state_dict()
    assert result.global_step == 1
    for name, value in student.items():
        if value.is_floating_point():
            assert not torch.equal(value, before[name]), name
            torch.testing.assert_close(teacher[name], 0.75 * before[name] + 0.25 * value)
        else:
            assert torch.equal(teacher[name], value), name
    assert not any(p.requires_grad for p in result.teacher.parameters())

    warm = EMATeacher(model, decay=0.99, warmup=True)
    assert [warm.alpha(s) for s in (1, 3, 1000)] == [0.5, 0.75, 0.99]


def test_early_stopping_stops_and_restores_the_best_epoch(tmp_path):
    scores = iter([3.0, 1.0, 2.0, 1.5, 0.1, 0.1])
    snapshots: list[dict] = []

    def evaluate(model, teacher, loader) -> dict[str, float]:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"score": next(scores), "items": float(sum(len(b[0]) for b in loader))}

    config = TrainConfig(
        epochs=6,
        batch_size=16,
        lr=1e-2,
        device="cpu",
        monitor="val_score",
        early_stopping_patience=2,
        scheduler="plateau",
        plateau_patience=0,
        plateau_factor=0.5,
    )
    model = make_model()
    result = fit(
        model,
        regression(64),
        config,
        tmp_path,
        loss_fn=nn.functional.mse_loss,
        val_set=regression(24, seed=1),
        evaluate_fn=evaluate,
    )
    assert result.stopped_early and result.epochs_run == 4
    assert (result.best_epoch, result.best_value) == (2, 1.0)
    assert result.best_metrics["val_items"] == 24
    records = read_metrics(tmp_path)
    assert [r["val_score"] for r in records] == [3.0, 1.0, 2.0, 1.5]
    # The plateau scheduler halved the rate after each epoch without improvement.
    assert [r["lr"] for r in records] == [1e-2, 1e-2, 1e-2, 5e-3]
    assert_same_state(model.state_dict(), snapshots[1])
    assert_same_state(checkpoint.load(tmp_path / "best.pt")["model"], snapshots[1])
    assert_same_state(checkpoint.load(tmp_path / "final.pt")["model"], snapshots[1])
    assert not torch.equal(snapshots[3]["0.weight"], snapshots[1]["0.weight"])


def test_gradient_clipping_bounds_the_update(tmp_path):
    def run_once(out: Path, clip: float | None) -> tuple[float, dict]:
        torch.manual_seed(0)
        model = nn.Linear(8, 1)
        before = [p.detach().clone() for p in model.parameters()]
        # Plain SGD with lr 1 and one step: the update is exactly the (clipped) gradient.
        config = TrainConfig(
            epochs=1,
            batch_size=64,
            lr=1.0,
            optimizer="sgd",
            momentum=0.0,
            device="cpu",
            grad_clip=clip,
        )
        result = fit(
            model,
            regression(64),
            config,
            out,
            step_fn=lambda m, t, b: 1000 * nn.functional.mse_loss(m(b[0]), b[1]),
        )
        update = torch.cat(
            [(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)]
        )
        return float(update.norm()), result.last_metrics

    clipped, metrics = run_once(tmp_path / "clipped", 0.5)
    unclipped, _ = run_once(tmp_path / "unclipped", None)
    assert clipped == pytest.approx(0.5, rel=1e-4)
    assert metrics["train_grad_norm"] == pytest.approx(unclipped, rel=1e-4)
    assert unclipped > 100


def test_config_errors_name_the_option():
    with pytest.raises(ConfigError, match=r"train\.optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match=r"train\.grad_clip"):
        TrainConfig(grad_clip=0.0)


def test_a_monitor_that_is_never_measured_is_reported(tmp_path):
    config = TrainConfig(epochs=1, batch_size=16, device="cpu", monitor="val_accuracy")
    with pytest.raises(ConfigError, match="val_accuracy"):
        fit(
            make_model(),
            NoisyRegression(32, 0, 0.0),
            config,
            tmp_path,
            loss_fn=nn.functional.mse_loss,
        )
