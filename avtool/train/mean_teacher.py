"""Mean-teacher training of a frame/clip tagger on weak + unlabeled clips (SED paper §2.3, §4.3.1).

It runs inside the shared loop (`avtool.train.loop.fit`: resume, DDP, EMA teacher, bf16), with
three pieces that loop does not have:
- `PairedClips`: item k is (weak clip k mod W, unlabeled clip k mod U), so a global batch of
  B items holds B weak and B unlabeled clips (the paper's 24 + 24); a pass covers the larger
  set once and cycles the smaller one.
- `mean_teacher_step`: loss = BCE(student clip probabilities, weak labels) + w x (MSE(student
  clip, teacher clip) + MSE(student frames, teacher frames)) over all clips of the batch
  (w = 2 in the paper); the teacher is the loop's EMA copy (decay 0.999).
- `scheduled_lr`: Adam's rate follows `lr_factor` per optimiser step: an exponential
  ramp-up exp(-5 (1 - s/R)^2) from ~0 to the base rate over R steps (12,500), then x d per
  step (d = 0.99995). The loop builds its optimiser itself, so the rate is set by an
  optimiser step pre-hook scoped to this model's optimiser; it reads the step count from
  Adam's state, which `last.pt` restores, so a resumed run continues the same schedule.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


@dataclass
class MeanTeacherConfig:
    consistency_weight: float = 2.0
    rampup_steps: int = 12500
    lr_decay: float = 0.99995  # per step after the ramp-up


def lr_factor(step: int, rampup_steps: int, decay: float) -> float:
    """The multiplier of the base rate at optimiser step `step` (counted from 1)."""
    if rampup_steps > 0 and step < rampup_steps:
        phase = 1.0 - step / rampup_steps
        return math.exp(-5.0 * phase * phase)
    return decay ** (step - rampup_steps)


def _adam_steps(optimizer: torch.optim.Optimizer) -> int:
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param)
            if state and "step" in state:
                return int(state["step"])
    return 0


@contextlib.contextmanager
def scheduled_lr(
    model: nn.Module, base_lr: float, factor: Callable[[int], float]
) -> Iterator[None]:
    """While active, every step of an optimiser over `model`'s parameters runs at
    base_lr x factor(step), the step it is about to take counted from 1."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    owned = {id(p) for p in model.parameters()}

    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        first = optimizer.param_groups[0]["params"][0]
        if id(first) not in owned:
            return  # another model's optimiser (a teacher, a test's): not ours to schedule
        lr = base_lr * factor(_adam_steps(optimizer) + 1)
        for group in optimizer.param_groups:
            group["lr"] = lr

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


class PairedClips(Dataset):
    """(weak, unlabeled) pairs over two lists of clip ids; `load(id)` gives a clip's inputs."""

    def __init__(
        self,
        weak: Sequence[str],
        labels: dict[str, Any],
        unlabeled: Sequence[str],
        load: Callable[[str], dict[str, Any]],
    ) -> None:
        if not weak:
            raise ValueError("mean teacher needs weakly labelled clips; none were given")
        self.weak, self.labels, self.load = list(weak), labels, load
        # Without unlabeled clips the weak ones stand in (consistency on labelled data only).
        self.unlabeled = list(unlabeled) or list(weak)

    def __len__(self) -> int:
        return max(len(self.weak), len(self.unlabeled))

    def __getitem__(self, index: int) -> tuple[dict[str, Any], Any, dict[str, Any]]:
        weak = self.weak[index % len(self.weak)]
        unlabeled = self.unlabeled[index % len(self.unlabeled)]
        return self.load(weak), self.labels[weak], self.load(unlabeled)


def collate_pairs(
    pairs: list[tuple[dict[str, Any], Any, dict[str, Any]]],
) -> dict[str, Any]:
    """One batch: inputs [2B, ...] per stream (the B weak clips first), labels [B, classes]."""
    clips = [weak for weak, _, _ in pairs] + [unlabeled for _, _, unlabeled in pairs]
    inputs = {
        stream: torch.stack([torch.as_tensor(clip[stream]) for clip in clips])
        for stream in clips[0]
    }
    labels = torch.stack([torch.as_tensor(label, dtype=torch.float32) for _, label, _ in pairs])
    return {"inputs": inputs, "labels": labels}


def _bce(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # Written out: torch's binary_cross_entropy refuses to run under autocast.
    p = probabilities.float().clamp(1e-7, 1 - 1e-7)
    return -(targets * torch.log(p) + (1 - targets) * torch.log1p(-p)).mean()


def mean_teacher_step(consistency_weight: float) -> Callable[..., Any]:
    """The loop's step function for models returning (frame probs [B, T, C], clip probs [B, C])."""

    def step(model: nn.Module, teacher: nn.Module | None, batch: dict[str, Any]):
        if teacher is None:
            raise ValueError("mean teacher training needs train.ema_decay set (paper: 0.999)")
        inputs, labels = batch["inputs"], batch["labels"]
        frames, clips = model(inputs)
        with torch.no_grad():
            teacher_frames, teacher_clips = teacher(inputs)
        classification = _bce(clips[: len(labels)], labels)
        consistency = nn.functional.mse_loss(
            clips.float(), teacher_clips.float()
        ) + nn.functional.mse_loss(frames.float(), teacher_frames.float())
        loss = classification + consistency_weight * consistency
        return loss, {"bce": classification.detach(), "consistency": consistency.detach()}

    return step
