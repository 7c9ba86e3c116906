"""An exponential-moving-average teacher (mean teacher, Tarvainen & Valpola 2017).

After every optimiser step, teacher = α·teacher + (1 - α)·student for every floating-point
parameter and buffer (so BatchNorm statistics follow the same average); integer buffers
(BatchNorm's step counter) are copied. With `warmup`, α = min(decay, 1 - 1/(step + 1)) as in
the mean-teacher reference code, so the teacher is not anchored to the random initialisation
while the student is still moving fast.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMATeacher:
    def __init__(self, student: nn.Module, decay: float, warmup: bool = False) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1], got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.module = copy.deepcopy(student)
        self.module.requires_grad_(False)

    def alpha(self, step: int) -> float:
        """The weight kept from the teacher at optimiser step `step` (counted from 1)."""
        if self.warmup:
            return min(self.decay, 1.0 - 1.0 / (step + 1))
        return self.decay

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> None:
        alpha = self.alpha(step)
        teacher_state = self.module.state_dict()
        for name, value in student.state_dict().items():
            target = teacher_state[name]
            if target.is_floating_point():
                target.lerp_(value.to(target.dtype), 1.0 - alpha)
            else:
                target.copy_(value)

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state)
