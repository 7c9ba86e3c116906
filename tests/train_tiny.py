"""A tiny training run for tests/test_train.py, importable and runnable as a script.

As a script it can SIGKILL itself at a given training step (to test resume), run under
`torchrun`, and record which files each rank created under the output directory.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from avtool.train.checkpoint import seed_everything
from avtool.train.loop import TrainConfig, TrainResult, fit


class NoisyRegression(Dataset):
    """y = x·w + noise (one w; `seed` draws x); items are jittered with Python's and NumPy's global RNGs on access,
    so a resume is exact only if those states are restored too."""

    def __init__(self, n: int, seed: int, jitter: float) -> None:
        w = torch.randn(8, 1, generator=torch.Generator().manual_seed(1234))
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ w + 0.1 * torch.randn(n, 1, generator=g)
        self.jitter = jitter

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[i]
        if self.jitter:
            noise = torch.from_numpy(np.random.normal(0.0, self.jitter, 8)).float()
            x = x * (1.0 + self.jitter * random.uniform(-1.0, 1.0)) + noise
        return x, self.y[i]


def make_model(seed: int = 0, dropout: float = 0.1) -> nn.Module:
    seed_everything(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1))


def mean_teacher_step(kill_at: int | None = None):
    """Supervised loss plus a consistency term to the EMA teacher; SIGKILL at step `kill_at`."""
    calls = {"train": 0}

    def step(model: nn.Module, teacher: nn.Module | None, batch) -> tuple[torch.Tensor, dict]:
        x, y = batch
        if model.training:
            calls["train"] += 1
            if calls["train"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        out = model(x)
        supervised = nn.functional.mse_loss(out, y)
        consistency = nn.functional.mse_loss(out, teacher(x)) if teacher is not None else 0.0
        return supervised + 0.1 * consistency, {"supervised": supervised}

    return step


def run(
    out: Path,
    *,
    kill_at: int | None = None,
    dropout: float = 0.1,
    jitter: float = 0.05,
    **overrides,
) -> TrainResult:
    options = dict(
        epochs=5,
        batch_size=16,
        lr=1e-2,
        seed=7,
        deterministic=True,
        device="cpu",
        scheduler="plateau",
        plateau_patience=1,
        early_stopping_patience=10,
        ema_decay=0.9,
        ema_warmup=True,
        grad_clip=1.0,
    )
    options.update(overrides)
    return fit(
        make_model(dropout=dropout),
        NoisyRegression(64, seed=1, jitter=jitter),
        TrainConfig(**options),
        out,
        step_fn=mean_teacher_step(kill_at),
        val_set=NoisyRegression(24, seed=2, jitter=0.0),
    )


def _record_writes(out: Path) -> list[str]:
    """Paths in `out` (or `out` itself) this process creates, renames onto, removes or opens
    for writing."""
    top = os.path.abspath(out)
    seen: list[str] = []
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = (
                any(c in mode for c in "wax+") if isinstance(mode, str) else flags & write_flags
            )
        elif event == "os.rename":
            path, writes = args[1], True
        elif event in ("os.remove", "os.mkdir"):
            path, writes = args[0], True
        else:
            return
        if writes and isinstance(path, str | os.PathLike):
            full = os.path.abspath(os.fspath(path))
            if full == top or full.startswith(top + os.sep):
                seen.append(f"{event} {os.path.relpath(full, top)}")

    sys.addaudithook(hook)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--checkpoint-every-steps", type=int)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--jitter", type=float, default=0.05)
    parser.add_argument("--audit-dir", type=Path, help="write writes-rank<R>.json here")
    args = parser.parse_args()
    writes = _record_writes(args.out) if args.audit_dir else []
    torch.set_num_threads(1)
    run(
        args.out,
        kill_at=args.kill_at,
        dropout=args.dropout,
        jitter=args.jitter,
        checkpoint_every_steps=args.checkpoint_every_steps,
    )
    if args.audit_dir:
        rank = os.environ.get("RANK", "0")
        (args.audit_dir / f"writes-rank{rank}.json").write_text(json.dumps(writes))


if __name__ == "__main__":
    main()
