"""The one training loop every avtool system uses.

`fit` trains a model in one process or under `torchrun` (DDP) without a change, checkpoints
atomically, resumes from the last checkpoint after a kill with bit-identical results on the CPU
(given `deterministic=True`), tracks the best epoch of a monitored metric, stops early, and can
keep a mean-teacher EMA copy of the model. It knows no task: a step function turns a batch into
a loss, an evaluate function turns the validation set into metrics.

Files in `out_dir` (written by rank 0 only, each atomically):
- `last.pt`: everything a resume needs (weights, optimiser, scheduler, teacher, early-stopping
  state, history, per-rank RNG states, position in the epoch);
- `best.pt`: weights (and teacher) of the best epoch so far;
- `metrics.jsonl`: one JSON object per finished epoch;
- `final.pt` and then `done.json`: the finished run; `fit` on a finished `out_dir` only loads
  `final.pt` and returns the stored result.

The data order of epoch e is a pure function of (seed, e) (DistributedSampler's generator), so
a resume needs no sampler state: it replays the permutation and skips what was consumed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import torch

# rich is imported here, not when the first bar is drawn: importing it draws from Python's
# global `random`, which would shift the random stream of a run (and differently in a resumed one).
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from avtool.core import atomic
from avtool.core.errors import ConfigError, StageFailed, StaleOutputError
from avtool.train import checkpoint
from avtool.train.distributed import DistContext, setup
from avtool.train.ema import EMATeacher

log = logging.getLogger("avtool.train")

LAST = "last.pt"
BEST = "best.pt"
FINAL = "final.pt"
DONE = "done.json"
METRICS = "metrics.jsonl"

StepOutput: TypeAlias = torch.Tensor | tuple[torch.Tensor, Mapping[str, torch.Tensor | float]]
# (model, teacher or None, batch already on the device) -> loss, or (loss, {name: value}).
StepFn: TypeAlias = Callable[[nn.Module, nn.Module | None, Any], StepOutput]
# (model outputs, targets) -> loss, for batches shaped (*inputs, target).
LossFn: TypeAlias = Callable[[Any, Any], torch.Tensor]
# (model, teacher or None, batches of this rank's share of the validation set, on the device)
# -> {name: mean over the share's items}.
EvaluateFn: TypeAlias = Callable[[nn.Module, nn.Module | None, Iterable[Any]], Mapping[str, float]]

# Options that change how a run executes, not what it computes: a resume may change them.
_OPERATIONAL = frozenset(
    {"device", "num_workers", "log_every", "checkpoint_every", "checkpoint_every_steps"}
)


@dataclass
class TrainConfig:
    epochs: int = 10
    # The global batch, split evenly over the processes, so a config means the same thing
    # on one CPU and on eight GPUs.
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam | adamw | sgd
    momentum: float = 0.9  # sgd only
    grad_clip: float | None = None  # max global L2 norm of the gradients; None = off
    scheduler: str = "none"  # none | plateau (ReduceLROnPlateau on the monitored metric)
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 0.0
    # The metric that picks best.pt, drives the plateau scheduler and early stopping;
    # None = val_loss with a validation set, else train_loss.
    monitor: str | None = None
    mode: str = "min"  # min | max
    early_stopping_patience: int | None = None  # epochs without improvement; None = off
    min_delta: float = 0.0
    restore_best: bool = True  # end with the best epoch's weights rather than the last
    ema_decay: float | None = None  # a mean teacher with this decay; None = no teacher
    ema_warmup: bool = False  # α = min(ema_decay, 1 - 1/(step + 1))
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms for the run
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast around the step and evaluation
    num_workers: int = 0
    drop_last: bool = False
    checkpoint_every: int = 1  # epochs between last.pt writes
    checkpoint_every_steps: int | None = None  # also write last.pt inside an epoch
    log_every: int = 50  # steps between progress updates

    def __post_init__(self) -> None:
        choices = {
            "optimizer": ("adam", "adamw", "sgd"),
            "scheduler": ("none", "plateau"),
            "mode": ("min", "max"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"train.{name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}"
                )
        positive = ["epochs", "batch_size", "checkpoint_every", "log_every"]
        positive += [
            name
            for name in ("early_stopping_patience", "checkpoint_every_steps")
            if getattr(self, name) is not None
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self, name)}: must be at least 1")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"train.grad_clip={self.grad_clip}: must be positive, or null (off)")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay <= 1.0:
            raise ConfigError(f"train.ema_decay={self.ema_decay}: must lie in [0, 1], or null")


@dataclass
class TrainResult:
    out_dir: Path
    epochs_run: int
    global_step: int
    stopped_early: bool
    monitor: str
    best_epoch: int | None
    best_value: float | None
    best_metrics: dict[str, Any]
    last_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    # The EMA teacher holding its final (or best-epoch) weights; not part of done.json.
    teacher: nn.Module | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del data["teacher"]
        data["out_dir"] = str(self.out_dir)
        return data


def fit(
    model: nn.Module,
    train_set: Dataset,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    loss_fn: LossFn | None = None,
    step_fn: StepFn | None = None,
    val_set: Dataset | None = None,
    evaluate_fn: EvaluateFn | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
) -> TrainResult:
    """Train `model` on `train_set`; resume from `out_dir/last.pt` if a run was interrupted.

    Give exactly one of `loss_fn` (batches are `(*inputs, target)`; the loss is
    `loss_fn(model(*inputs), target)`) or `step_fn(model, teacher, batch)` returning the loss or
    `(loss, {name: value})`; `teacher` is the EMA copy when `config.ema_decay` is set, else None.
    Batches reach the step on the training device. With `val_set`, validation runs after every
    epoch (eval mode, no grad): `evaluate_fn(model, teacher, batches)` returns means over the
    items of `batches` (this rank's share under DDP; shares are averaged weighted by size),
    or, without it, the step's loss is `val_loss`. Metrics are recorded per epoch as
    `train_<name>` (means over steps and ranks) and `val_<name>`.

    On return `model` holds the final weights (the best epoch's with `restore_best`) and is in
    eval mode. Under `torchrun` every rank returns the same result; only rank 0 writes.
    """
    if (loss_fn is None) == (step_fn is None):
        raise ValueError("fit: give exactly one of loss_fn or step_fn")
    step = step_fn if step_fn is not None else _supervised(loss_fn)  # type: ignore[arg-type]
    trainer = _Trainer(model, train_set, val_set, step, evaluate_fn, collate_fn, config, out_dir)
    return trainer.run()


def _supervised(loss_fn: LossFn) -> StepFn:
    def step(model: nn.Module, teacher: nn.Module | None, batch: Any) -> torch.Tensor:
        *inputs, target = batch
        return loss_fn(model(*inputs), target)

    return step


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor inside nested tuples, lists and dicts to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(value, device) for value in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


class _OnDevice:
    """Batches of `loader` moved to `device`; len() is the number of batches."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader = loader
        self.device = device

    def __iter__(self) -> Iterator[Any]:
        return (to_device(batch, self.device) for batch in self.loader)

    def __len__(self) -> int:
        return len(self.loader)


class _ResumableSampler(DistributedSampler):
    """DistributedSampler that can start part-way into an epoch (after a mid-epoch resume).

    Global batch k of an epoch is always the permutation's items [k·B, (k+1)·B) whatever the
    number of processes, so skipping k·B/world items on each rank resumes exactly.
    """

    skip = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class _Progress:
    """A rich bar on a terminal, a log line every `log_every` steps elsewhere; silent off rank 0."""

    def __init__(self, enabled: bool, log_every: int) -> None:
        self.enabled = enabled
        self.log_every = log_every
        self.tty = enabled and sys.stderr.isatty()
        self.bar: Any = None

    def start(self, title: str, total: int, done: int) -> None:
        self.title, self.total, self.started = title, total, time.monotonic()
        if self.tty:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(title, total=total, completed=done, loss="")

    def update(self, done: int, loss: torch.Tensor, lr: float) -> None:
        if not self.enabled:
            return
        if self.tty:
            fields = {"loss": f"loss {loss.item():.4g}"} if done % self.log_every == 0 else {}
            self.bar.update(self.task, completed=done, **fields)
        elif done % self.log_every == 0 or done == self.total:
            elapsed = time.monotonic() - self.started
            log.info(
                "%s step %d/%d loss %.4g lr %.3g (%.1fs)",
                self.title,
                done,
                self.total,
                loss.item(),
                lr,
                elapsed,
            )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class _Trainer:
    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset,
        val_set: Dataset | None,
        step: StepFn,
        evaluate_fn: EvaluateFn | None,
        collate_fn: Callable[[list[Any]], Any] | None,
        config: TrainConfig,
        out_dir: str | os.PathLike,
    ) -> None:
        self.cfg = config
        self.module = model
        self.train_set = train_set
        self.val_set = val_set
        self.step = step
        self.evaluate_fn = evaluate_fn
        self.collate_fn = collate_fn
        self.out = Path(out_dir)
        self.monitor = config.monitor or ("val_loss" if val_set is not None else "train_loss")
        self.config_dict = dataclasses.asdict(config)
        self.teacher: EMATeacher | None = None
        # Progress through the run: epochs finished, batches into the current epoch, steps taken.
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        # Sums over (rank, step) of the epoch's step metrics already checkpointed mid-epoch.
        self.carried: dict[str, float] = {}
        self.carried_seconds = 0.0

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        previous = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark,
        )
        if self.cfg.deterministic:
            # cuBLAS needs this before its first handle is made to be deterministic.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.ctx: DistContext = setup(self.cfg.device)
        try:
            result = self._run()
            self.ctx.barrier()
            return result
        finally:
            self.ctx.close()
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
            torch.backends.cudnn.benchmark = previous[2]

    def _run(self) -> TrainResult:
        ctx, cfg = self.ctx, self.cfg
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(
                f"train.batch_size={cfg.batch_size} is the global batch and must split evenly "
                f"over {ctx.world_size} processes; change it or the number of processes"
            )
        self.rank_batch = cfg.batch_size // ctx.world_size
        if self.val_set is not None and len(self.val_set) < ctx.world_size:  # type: ignore[arg-type]
            raise ConfigError(
                f"validation set of {len(self.val_set)} items is smaller than the "  # type: ignore[arg-type]
                f"{ctx.world_size} processes that share it; give more items or fewer processes"
            )
        self.module.to(ctx.device)
        if (self.out / DONE).is_file():
            return self._finished()
        if ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic.sweep_temporaries(self.out)
        if cfg.ema_decay is not None:
            self.teacher = EMATeacher(self.module, cfg.ema_decay, cfg.ema_warmup)
        self.optimizer = self._make_optimizer()
        self.scheduler = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode=cfg.mode,
                factor=cfg.plateau_factor,
                patience=cfg.plateau_patience,
                min_lr=cfg.min_lr,
            )
            if cfg.scheduler == "plateau"
            else None
        )
        if (self.out / LAST).is_file():
            self._resume()
        else:
            checkpoint.seed_everything(checkpoint.derive_seed(cfg.seed, "rank", ctx.rank))
        self.net: nn.Module = self.module
        if ctx.is_distributed:
            device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.module, device_ids=device_ids)
        self.sampler = _ResumableSampler(
            self.train_set,
            num_replicas=ctx.world_size,
            rank=ctx.rank,
            shuffle=True,
            seed=cfg.seed,
        )
        self.progress = _Progress(ctx.is_main, cfg.log_every)
        while self.epoch < cfg.epochs and not self.stopped_early:
            self._train_epoch()
        return self._finish()

    # -- one epoch -----------------------------------------------------------------------------

    def _train_epoch(self) -> None:
        ctx, cfg = self.ctx, self.cfg
        started = time.monotonic()
        self.sampler.set_epoch(self.epoch)
        self.sampler.skip = self.step_in_epoch * self.rank_batch
        # Worker seeds come from this generator, so they too depend only on (seed, epoch).
        generator = torch.Generator().manual_seed(
            checkpoint.derive_seed(cfg.seed, "loader", self.epoch)
        )
        loader = DataLoader(
            self.train_set,
            batch_size=self.rank_batch,
            sampler=self.sampler,
            num_workers=cfg.num_workers,
            collate_fn=self.collate_fn,
            drop_last=cfg.drop_last,
            pin_memory=ctx.device.type == "cuda",
            generator=generator,
        )
        total = self.step_in_epoch + len(loader)
        if total == 0:
            raise ConfigError(
                f"train set of {len(self.train_set)} items gives no full batch of "  # type: ignore[arg-type]
                f"{cfg.batch_size}; lower train.batch_size or set train.drop_last=false"
            )
        sums: dict[str, torch.Tensor] = {}
        steps_here = 0
        self.net.train()
        if self.teacher is not None:
            self.teacher.module.train()
        self.progress.start(f"epoch {self.epoch + 1}/{cfg.epochs}", total, self.step_in_epoch)
        try:
            for batch in loader:
                loss, metrics = self._step(to_device(batch, ctx.device))
                steps_here += 1
                for name, value in {"loss": loss, **metrics}.items():
                    value = torch.as_tensor(value, device=ctx.device).detach().double()
                    sums[name] = sums[name] + value if name in sums else value
                self.progress.update(self.step_in_epoch, loss, self._lr())
                every = cfg.checkpoint_every_steps
                if every and self.global_step % every == 0 and self.step_in_epoch < total:
                    reduced = self._reduce(sums, steps_here, self.carried)
                    self._save_last(carried=reduced, seconds=time.monotonic() - started)
        finally:
            self.progress.stop()
        totals = self._reduce(sums, steps_here, self.carried)
        count = totals.pop("_count")
        record: dict[str, Any] = {"epoch": self.epoch + 1, "step": self.global_step}
        record.update({f"train_{name}": value / count for name, value in totals.items()})
        if not math.isfinite(record["train_loss"]):
            raise StageFailed(
                f"{self.out}: training loss is {record['train_loss']} in epoch {self.epoch + 1}; "
                "lower train.lr, set train.grad_clip, or check the data"
            )
        record.update(self._validate())
        record["lr"] = self._lr()
        record["seconds"] = round(self.carried_seconds + time.monotonic() - started, 3)
        self.carried, self.carried_seconds = {}, 0.0
        self._end_epoch(record)

    def _step(self, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        cfg = self.cfg
        teacher = self.teacher.module if self.teacher is not None else None
        with self._autocast():
            output = self.step(self.net, teacher, batch)
        loss, metrics = (output[0], dict(output[1])) if isinstance(output, tuple) else (output, {})
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
            metrics["grad_norm"] = norm
        self.optimizer.step()
        self.global_step += 1
        self.step_in_epoch += 1
        if self.teacher is not None:
            self.teacher.update(self.module, self.global_step)
        return loss.detach().float(), metrics

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.cfg.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.ctx.device.type, dtype=torch.bfloat16)

    def _reduce(
        self, sums: dict[str, torch.Tensor], steps: int, carried: dict[str, float]
    ) -> dict[str, float]:
        """Sums over every rank and step of this epoch, plus what a resumed run carried over.

        `_count` is the number of (rank, step) pairs, the divisor of the epoch means.
        """
        names = sorted(set(sums) | (set(carried) - {"_count"}))
        local = [float(steps)] + [0.0] * len(names)
        values = torch.tensor(local, dtype=torch.float64, device=self.ctx.device)
        for i, name in enumerate(names, start=1):
            if name in sums:
                values[i] += sums[name]
        # What was carried is already a sum over ranks: count it once.
        if self.ctx.is_main:
            values[0] += carried.get("_count", 0.0)
            for i, name in enumerate(names, start=1):
                values[i] += carried.get(name, 0.0)
        reduced = self.ctx.all_reduce_sum(values).tolist()
        return {"_count": reduced[0], **dict(zip(names, reduced[1:], strict=True))}

    def _validate(self) -> dict[str, float]:
        if self.val_set is None:
            return {}
        ctx = self.ctx
        # A strided share per rank, without DistributedSampler's padding, so nothing counts twice.
        share = Subset(self.val_set, range(ctx.rank, len(self.val_set), ctx.world_size))  # type: ignore[arg-type]
        loader = _OnDevice(
            DataLoader(
                share,
                batch_size=self.rank_batch,
                shuffle=False,
                num_workers=self.cfg.num_workers,
                collate_fn=self.collate_fn,
                pin_memory=ctx.device.type == "cuda",
            ),
            ctx.device,
        )
        teacher = self.teacher.module if self.teacher is not None else None
        self.module.eval()
        if teacher is not None:
            teacher.eval()
        with torch.no_grad(), self._autocast():
            if self.evaluate_fn is not None:
                metrics = {
                    k: float(v) for k, v in self.evaluate_fn(self.module, teacher, loader).items()
                }
            else:
                total = 0.0
                for i, batch in enumerate(loader):
                    output = self.step(self.module, teacher, batch)
                    loss = output[0] if isinstance(output, tuple) else output
                    size = min(self.rank_batch, len(share) - i * self.rank_batch)
                    total += float(loss) * size
                metrics = {"loss": total / len(share)}
        self.module.train()
        if teacher is not None:
            teacher.train()
        # Every rank must reduce the same names in the same order; weight means by share size.
        names = sorted(metrics)
        weight = float(len(share))
        values = torch.tensor([weight] + [weight * metrics[n] for n in names], dtype=torch.float64)
        reduced = ctx.all_reduce_sum(values).tolist()
        return {
            f"val_{name}": value / reduced[0]
            for name, value in zip(names, reduced[1:], strict=True)
        }

    def _end_epoch(self, record: dict[str, Any]) -> None:
        cfg = self.cfg
        if self.monitor not in record:
            raise ConfigError(
                f"train.monitor={self.monitor!r} is not among the epoch's metrics "
                f"({', '.join(sorted(record))}); set it to one of them"
            )
        value = float(record[self.monitor])
        if self.scheduler is not None:
            self.scheduler.step(value)
        improved = not math.isnan(value) and (
            self.best is None
            or (
                value < self.best - cfg.min_delta
                if cfg.mode == "min"
                else value > self.best + cfg.min_delta
            )
        )
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, record["epoch"], 0
        else:
            self.bad_epochs += 1
        patience = cfg.early_stopping_patience
        self.stopped_early = patience is not None and self.bad_epochs >= patience
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        if self.ctx.is_main:
            lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.history)
            atomic.write_text(self.out / METRICS, lines)
            shown = " ".join(
                f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float) and k != "seconds"
            )
            log.info(
                "epoch %d/%d %s (%.1fs)", record["epoch"], cfg.epochs, shown, record["seconds"]
            )
        last_epoch = self.epoch >= cfg.epochs or self.stopped_early
        # last.pt is written whenever best.pt is, and first: best.pt then never holds an epoch
        # that a resume would redo, and a kill between the two is repaired on resume.
        if improved or last_epoch or self.epoch % cfg.checkpoint_every == 0:
            self._save_last()
        if improved and self.ctx.is_main:
            self._save_best()
        if self.stopped_early:
            log.info(
                "early stop after epoch %d: %s has not improved for %d epochs (best %.4g, epoch %d)",
                record["epoch"],
                self.monitor,
                self.bad_epochs,
                self.best,
                self.best_epoch,
            )

    # -- checkpoints ---------------------------------------------------------------------------

    def _save_last(self, carried: dict[str, float] | None = None, seconds: float = 0.0) -> None:
        # A collective: every rank hands rank 0 its RNG state.
        rng = self.ctx.gather_objects(checkpoint.capture_rng(self.ctx.device))
        if not self.ctx.is_main:
            return
        payload = {
            "config": self.config_dict,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "carried": carried or {},
            "carried_seconds": self.carried_seconds + seconds,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "history": self.history,
            "rng": rng,
        }
        checkpoint.save(self.out / LAST, payload)

    def _save_best(self) -> None:
        checkpoint.save(
            self.out / BEST,
            {
                "epoch": self.best_epoch,
                "value": self.best,
                "monitor": self.monitor,
                "model": self.module.state_dict(),
                "teacher": self.teacher.state_dict() if self.teacher is not None else None,
            },
        )

    def _resume(self) -> None:
        ctx = self.ctx
        state = checkpoint.load(self.out / LAST)
        self._check_config(state["config"], LAST)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.teacher is not None:
            self.teacher.load_state_dict(state["teacher"])
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.carried = state["carried"]
        self.carried_seconds = state["carried_seconds"]
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.stopped_early = state["stopped_early"]
        self.history = state["history"]
        rng = state["rng"]
        if len(rng) == ctx.world_size:
            checkpoint.restore_rng(rng[ctx.rank], ctx.device)
        else:
            # Another number of processes: the data order still resumes exactly, the RNG cannot.
            checkpoint.seed_everything(
                checkpoint.derive_seed(self.cfg.seed, "rank", ctx.rank, self.global_step)
            )
            if ctx.is_main:
                log.warning(
                    "%s was written by %d processes, resuming with %d: random streams restart",
                    self.out / LAST,
                    len(rng),
                    ctx.world_size,
                )
        if ctx.is_main:
            log.info(
                "resumed from %s at epoch %d, step %d of the epoch (global step %d)",
                self.out / LAST,
                self.epoch + 1,
                self.step_in_epoch,
                self.global_step,
            )
            # Killed between last.pt and best.pt: the checkpoint is the best epoch, rewrite it.
            at_best = self.best_epoch == self.epoch and self.step_in_epoch == 0
            best_file = self.out / BEST
            if at_best and (
                not best_file.is_file() or checkpoint.load(best_file)["epoch"] != self.best_epoch
            ):
                self._save_best()

    def _check_config(self, stored: dict[str, Any], where: str) -> None:
        changed = sorted(
            key
            for key in set(stored) | set(self.config_dict)
            if key not in _OPERATIONAL and stored.get(key) != self.config_dict.get(key)
        )
        if changed:
            raise StaleOutputError(
                f"{self.out / where}: this run was made with other training options "
                f"({', '.join(changed)}); use another output directory, or --force to start over"
            )

    # -- the end -------------------------------------------------------------------------------

    def _finish(self) -> TrainResult:
        ctx, cfg = self.ctx, self.cfg
        weights_epoch = self.history[-1]["epoch"]
        if cfg.restore_best and self.best_epoch is not None and self.best_epoch != weights_epoch:
            weights_epoch = self.best_epoch
            ctx.barrier()  # best.pt is written by rank 0; everyone reads it.
            best = checkpoint.load(self.out / BEST)
            self.module.load_state_dict(best["model"])
            if self.teacher is not None:
                self.teacher.load_state_dict(best["teacher"])
            if ctx.is_main:
                log.info(
                    "restored the weights of epoch %d (best %s)", self.best_epoch, self.monitor
                )
        result = self._result()
        if ctx.is_main:
            checkpoint.save(
                self.out / FINAL,
                {
                    "model": self.module.state_dict(),
                    "teacher": self.teacher.state_dict() if self.teacher is not None else None,
                    "epoch": weights_epoch,
                },
            )
            atomic.write_json(self.out / DONE, {"config": self.config_dict, **result.to_json()})
        self.module.eval()
        return result

    def _result(self) -> TrainResult:
        best_metrics = next((r for r in self.history if r["epoch"] == self.best_epoch), {})
        return TrainResult(
            out_dir=self.out,
            epochs_run=len(self.history),
            global_step=self.global_step,
            stopped_early=self.stopped_early,
            monitor=self.monitor,
            best_epoch=self.best_epoch,
            best_value=self.best,
            best_metrics=best_metrics,
            last_metrics=self.history[-1],
            history=self.history,
            teacher=self.teacher.module if self.teacher is not None else None,
        )

    def _finished(self) -> TrainResult:
        """A finished run: load its final weights and hand back its stored result."""
        stored = json.loads((self.out / DONE).read_text())
        self._check_config(stored.pop("config"), DONE)
        final = checkpoint.load(self.out / FINAL)
        self.module.load_state_dict(final["model"])
        teacher = None
        if final["teacher"] is not None:
            teacher = EMATeacher(self.module, self.cfg.ema_decay or 0.0)
            teacher.load_state_dict(final["teacher"])
        if self.ctx.is_main:
            log.info("%s: training already finished; loaded %s", self.out, FINAL)
        self.module.eval()
        stored["out_dir"] = self.out
        return TrainResult(**stored, teacher=teacher.module if teacher is not None else None)

    # -- helpers -------------------------------------------------------------------------------

    def _make_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        params = [p for p in self.module.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])
