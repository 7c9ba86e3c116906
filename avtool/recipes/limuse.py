"""LiMuSE recipe: train, quantize (3-bit weights, 8-bit activations), evaluate, Table 2.

Stages (each stamped, resumable through `avtool.train.loop.fit`):
- `train_limuse`: LiMuSE (or a TasNet baseline) on the mixtures of `prepare grid` with the
  voiceprint and face stores: negative SI-SDR, Adam lr 1e-3, gradient L2 norm clipped at 5,
  lr halved after 2 epochs without validation improvement, stop after 6, 50 epochs.
- `quantize_limuse`: from a finished run, weight quantization networks (eqs. 1-4) and 8-bit
  min-max activations, fine-tuned 10 epochs at lr 1e-4 with T = 5 x epoch; then the packed
  file `model.avtq` (avtool.quant.pack) and the check that the model loaded from it gives the
  fake-quantized model's outputs.
- `evaluate_limuse`: SI-SDR and SI-SDRi per test mixture (the packed model for a quantized
  run), mean and spread, a histogram.
- `report_limuse`: Table 2's columns for every evaluated run found.

Inputs: `mixtures.jsonl` of `prepare grid` (two-channel mixture, target at microphone 0), the
enrolment voiceprint (store of `features voiceprint`, keyed by utterance) and the target's
per-frame visual features (store of `features face`, keyed by video). The cue sizes come from
the stores. Visual features are read with `avtool.features.face.read_visual` (mouth shape per
frame and an identity descriptor per video) where the face stage provides it, else from its
per-frame records (`embedding`). `visual_order: shuffled` permutes each item's frames in time
(a fixed permutation per item): the ablation that shows what the lip motion's timing is worth.

Where avtool departs from the paper: the voiceprint is resemblyzer's 256-d d-vector, not
pyannote's 512-d; the visual features are ours (see avtool.features.face), not DAVS lip
features; mixtures whose cue is missing from a store are left out (counted in the summary);
the TasNet baselines separate without a cue and are scored with their output nearer the
target. Model size: bytes of the packed file for a quantized run, 4 x #params for a
full-precision one (the paper's convention); compression ratio against the fp32 no-GC model of
the same cue sizes.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, InputError
from avtool.models.limuse import LimuseModelConfig
from avtool.models.tasnet import TasNetConfig
from avtool.train.loop import TrainConfig

ARCHS = ("limuse", "tasnet")
TRAIN_VERSION = 1
QUANTIZE_VERSION = 1
EVALUATE_VERSION = 1
REPORT_VERSION = 1
PACKED = "model.avtq"
# Table 2 of the paper: (method, K) -> SI-SDR dB, #params, model size MB.
PAPER = {
    ("LiMuSE", 32): (16.72, "0.36M", "0.16MB"),
    ("LiMuSE", 16): (18.08, "0.96M", "0.40MB"),
    ("LiMuSE (w/o Q)", 32): (23.77, "0.36M", "1.44MB"),
    ("LiMuSE (w/o Q)", 16): (24.90, "0.96M", "3.84MB"),
    ("LiMuSE (w/o Q and VP)", 32): (18.60, "0.19M", "0.76MB"),
    ("LiMuSE (w/o Q and VP)", 16): (24.20, "0.52M", "2.08MB"),
    ("LiMuSE (w/o Q and VIS)", 32): (15.68, "0.22M", "0.88MB"),
    ("LiMuSE (w/o Q and VIS)", 16): (21.91, "0.55M", "2.20MB"),
    ("LiMuSE (w/o Q and GC)", 1): (23.67, "8.95M", "35.8MB"),
    ("TasNet (dual-channel)", 1): (19.94, "2.48M", "9.92MB"),
    ("TasNet (single-channel)", 1): (13.15, "2.48M", "9.92MB"),
}


def _paper_train_config() -> TrainConfig:
    return TrainConfig(
        epochs=50,
        batch_size=8,
        lr=1e-3,
        grad_clip=5.0,
        scheduler="plateau",
        plateau_factor=0.5,
        plateau_patience=1,  # halved when the 2nd epoch in a row brings no improvement
        early_stopping_patience=6,
        restore_best=True,
        device="auto",
        log_every=100,
    )


def _paper_quant_train_config() -> TrainConfig:
    config = _paper_train_config()
    config.epochs, config.lr = 10, 1e-4
    return config


@dataclass
class LimuseConfig:
    arch: str = "limuse"  # limuse | tasnet
    voiceprint: bool = True  # use the voiceprint cue (its size comes from the store)
    visual: bool = True  # use the visual cue
    visual_features: str = "mouth"  # mouth | mouth+identity (read_visual stores only)
    visual_order: str = "time"  # time | shuffled (ablation: frames permuted per item)
    model: LimuseModelConfig = field(default_factory=LimuseModelConfig)
    tasnet: TasNetConfig = field(default_factory=TasNetConfig)
    max_train_items: int = 0  # 0 = every training mixture
    train: TrainConfig = field(default_factory=_paper_train_config)

    def __post_init__(self) -> None:
        choices = (
            ("arch", ARCHS),
            ("visual_features", ("mouth", "mouth+identity")),
            ("visual_order", ("time", "shuffled")),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")


@dataclass
class QuantizeConfig:
    weight_bits: int = 3
    act_bits: int = 8
    temperature_per_epoch: float = 5.0  # T = 5 x epoch
    check_items: int = 4  # mixtures on which packed and fake-quantized outputs are compared
    train: TrainConfig = field(default_factory=_paper_quant_train_config)

    def __post_init__(self) -> None:
        if not 2 <= self.weight_bits <= 8 or not 0 <= self.act_bits <= 16:
            raise ConfigError("weight_bits must lie in 2..8 and act_bits in 0..16 (0 = off)")


# --- data -------------------------------------------------------------------------------------


def _visual_reader():
    """`read(store, video_id) -> (mouth [frames, d], identity [d'] or None)`: through
    `avtool.features.face.read_visual` for stores of mouth and identity records, from the
    per-frame `embedding` records of the face stage's earlier format otherwise."""
    try:
        from avtool.features.face import read_visual
    except ImportError:  # a face module without the mouth features
        read_visual = None

    def read(store, video_id: str) -> tuple[np.ndarray, np.ndarray | None]:
        item = store[video_id]
        names = item.dtype.names or ()
        if "embedding" in names:
            return np.asarray(item["embedding"], np.float32), None
        if read_visual is None or not names:
            return np.asarray(item, np.float32), None
        return read_visual(store, video_id)

    return read


class LimuseMixtures:
    """(mixture [2, S], voiceprint [vp] or [0], visual [frames, d] or [0], target [S]) per
    mixture of one split; the cue sizes come from the stores."""

    def __init__(
        self,
        data: Path,
        split: str,
        voiceprint: Path | None,
        face: Path | None,
        config: LimuseConfig,
        limit: int = 0,
    ) -> None:
        from avtool.core.journal import read_jsonl
        from avtool.core.store import FeatureStore

        self.lists = Path(data) / "lists"
        listing = self.lists / "mixtures.jsonl"
        if not listing.is_file():
            raise InputError(f"{listing}: not found; run `avtool prepare grid --out {data}` first")
        self.config = config
        limuse = config.arch == "limuse"
        self.voiceprints = FeatureStore(voiceprint) if limuse and config.voiceprint else None
        self.faces = FeatureStore(face) if limuse and config.visual else None
        if limuse and config.voiceprint and voiceprint is None:
            raise InputError(
                "the voiceprint cue is on: give --voiceprint STORE (or voiceprint=false)"
            )
        if limuse and config.visual and face is None:
            raise InputError("the visual cue is on: give --face STORE (or visual=false)")
        self.read_visual = _visual_reader()
        items, self.missing = [], 0
        for item in read_jsonl(listing):
            if item["split"] != split or not (self.lists / item["path"]).is_file():
                continue
            if (self.voiceprints is not None and item["enrol"] not in self.voiceprints) or (
                self.faces is not None and item["target"] not in self.faces
            ):
                self.missing += 1
                continue
            items.append(item)
        self.items = items[:limit] if limit else items
        self.fps = (
            float((self.faces.attrs.get("params") or {}).get("fps", 25.0)) if self.faces else 25.0
        )

    def __len__(self) -> int:
        return len(self.items)

    def visual(self, item: dict[str, Any], samples: int, sr: int) -> np.ndarray:
        mouth, identity = self.read_visual(self.faces, item["target"])
        mouth = np.asarray(mouth, np.float32).reshape(len(mouth), -1)
        if self.config.visual_features == "mouth+identity":
            if identity is None:
                raise InputError(
                    f"{self.faces.path}: no identity descriptor per video; "
                    "use visual_features=mouth or re-extract with `avtool features face`"
                )
            mouth = np.concatenate(
                [mouth, np.broadcast_to(identity, (len(mouth), len(identity)))], 1
            )
        frames = max(1, round(samples / sr * self.fps))
        if len(mouth) < frames:  # a clip a frame short (GRID has 74-frame videos): repeat the last
            mouth = np.concatenate([mouth, np.repeat(mouth[-1:], frames - len(mouth), 0)])
        mouth = mouth[:frames]
        if self.config.visual_order == "shuffled":
            seed = zlib.crc32(item["id"].encode())
            mouth = mouth[np.random.default_rng(seed).permutation(frames)]
        return np.ascontiguousarray(mouth, dtype=np.float32)

    def __getitem__(self, position: int):
        import soundfile
        import torch

        item = self.items[position]
        mixture, sr = soundfile.read(self.lists / item["path"], dtype="float32", always_2d=True)
        target, _ = soundfile.read(self.lists / item["target_path"], dtype="float32")
        samples = len(target)
        empty = torch.zeros(0)
        vp = (
            torch.from_numpy(np.asarray(self.voiceprints[item["enrol"]], np.float32))
            if self.voiceprints is not None
            else empty
        )
        vis = torch.from_numpy(self.visual(item, samples, sr)) if self.faces is not None else empty
        return torch.from_numpy(mixture.T.copy()), vp, vis, torch.from_numpy(target)

    def dims(self) -> dict[str, int]:
        if not self.items:
            return {"voiceprint_dim": 0, "face_dim": 0}
        _, vp, vis, _ = self[0]
        return {"voiceprint_dim": int(vp.shape[-1]) if vp.numel() else 0,
                "face_dim": int(vis.shape[-1]) if vis.numel() else 0}  # fmt: skip


# --- models -----------------------------------------------------------------------------------


def build_model(header: dict[str, Any]):
    """The network of a run's header ({"arch", "model"}), unquantized."""
    from avtool.core.config import from_dict
    from avtool.models.limuse import LiMuSE
    from avtool.models.tasnet import TasNet

    if header["arch"] == "tasnet":
        return TasNet(from_dict(TasNetConfig, header["model"]))
    return LiMuSE(from_dict(LimuseModelConfig, header["model"]))


def _forward(model, mixture, voiceprint, visual):
    return model(
        mixture, voiceprint if voiceprint.numel() else None, visual if visual.numel() else None
    )


def _estimate(model, arch: str, mixture, voiceprint, visual, target):
    """The target estimate [B, S]: for TasNet, the output with the higher SI-SDR."""
    import torch

    from avtool.metrics.si_sdr import differentiable_si_sdr as si_sdr

    output = _forward(model, mixture, voiceprint, visual)
    if arch != "tasnet":
        return output
    scores = si_sdr(output, target.unsqueeze(1).expand_as(output))
    return output[torch.arange(len(output)), scores.argmax(dim=1)]


def _loss(model, arch: str, batch) -> Any:
    import torch

    from avtool.metrics.si_sdr import differentiable_si_sdr as si_sdr
    from avtool.metrics.si_sdr import negative_si_sdr

    mixture, voiceprint, visual, target = batch
    output = _forward(model, mixture, voiceprint, visual)
    if arch != "tasnet":
        return negative_si_sdr(output, target)
    # uPIT over (target, interferer at microphone 0 = mixture - target).
    sources = torch.stack([target, mixture[:, 0] - target], dim=1)
    direct = si_sdr(output, sources).mean(dim=1)
    swapped = si_sdr(output, sources.flip(1)).mean(dim=1)
    return -torch.maximum(direct, swapped).mean()


def _validate(arch: str):
    def evaluate(model, teacher, loader) -> dict[str, float]:
        from avtool.metrics.si_sdr import differentiable_si_sdr as si_sdr

        total, count = 0.0, 0
        for mixture, voiceprint, visual, target in loader:
            estimate = _estimate(model, arch, mixture, voiceprint, visual, target)
            total += float(si_sdr(estimate, target).sum())
            count += len(target)
        return {"loss": -total / max(count, 1), "si_sdr": total / max(count, 1)}

    return evaluate


def _header(config: LimuseConfig, dims: dict[str, int]) -> dict[str, Any]:
    if config.arch == "tasnet":
        return {"arch": "tasnet", "model": asdict(config.tasnet)}
    model = asdict(config.model)
    model["voiceprint_dim"] = dims["voiceprint_dim"] if config.voiceprint else 0
    model["face_dim"] = dims["face_dim"] if config.visual else 0
    return {"arch": "limuse", "model": model}


def _parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _fp32_no_gc_bytes(header: dict[str, Any]) -> int:
    """Bytes of the fp32 no-GC LiMuSE with the run's cue sizes: Table 2's reference."""
    model = dict(header["model"]) if header["arch"] == "limuse" else asdict(LimuseModelConfig())
    model["groups"] = 1
    return 4 * _parameter_count(build_model({"arch": "limuse", "model": model}))


def _inputs(data: Path, voiceprint: Path | None, face: Path | None) -> list[Path]:
    paths = [Path(data) / "lists", Path(data) / "mix"]
    return paths + [Path(p) for p in (voiceprint, face) if p is not None]


# --- train ------------------------------------------------------------------------------------


def train_limuse(
    data: Path,
    out: Path,
    config: LimuseConfig,
    voiceprint: Path | None = None,
    face: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Train one network; writes final.pt, metrics.jsonl and summary.json into `out`."""
    import torch

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.train.loop import fit

    out, data = Path(out), Path(data).resolve()
    voiceprint = Path(voiceprint).resolve() if voiceprint else None
    face = Path(face).resolve() if face else None
    stage_config = {
        "config": asdict(config),
        "data": str(data),
        "voiceprint": str(voiceprint),
        "face": str(face),
    }
    stage = Stage("train.limuse", TRAIN_VERSION, out, stage_config, _inputs(data, voiceprint, face))
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **_headline(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    train_set = LimuseMixtures(data, "train", voiceprint, face, config, config.max_train_items)
    if not len(train_set):
        raise InputError(f"{data}: no training mixture with its cues; check the stores' items")
    val_set = LimuseMixtures(data, "valid", voiceprint, face, config)
    dims = train_set.dims()
    header = _header(config, dims)
    torch.manual_seed(config.train.seed)
    model = build_model(header)
    arch = config.arch
    result = fit(
        model,
        train_set,
        config.train,
        out,
        step_fn=lambda net, teacher, batch: _loss(net, arch, batch),
        val_set=val_set if len(val_set) else None,
        evaluate_fn=_validate(arch) if len(val_set) else None,
    )
    summary = {
        **header,
        "data": str(data),
        "voiceprint": str(voiceprint) if voiceprint else None,
        "face": str(face) if face else None,
        "visual_order": config.visual_order,
        "visual_features": config.visual_features,
        "params": _parameter_count(model),
        "train_items": len(train_set),
        "valid_items": len(val_set),
        "left_out_missing_cues": train_set.missing + val_set.missing,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "final_train_loss": result.last_metrics.get("train_loss"),
    }
    if main_process:
        atomic.write_json(out / "summary.json", summary)
        stage.finish(
            counts={"train_items": len(train_set), "epochs": result.epochs_run},
            outputs=["final.pt", "metrics.jsonl", "summary.json"],
        )
    return {"state": "done", **_headline(summary)}


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "arch",
        "params",
        "train_items",
        "epochs_run",
        "final_train_loss",
        "bytes",
        "max_deviation",
    )
    return {k: summary[k] for k in keys if summary.get(k) is not None}


def _read_run(run: Path) -> tuple[dict[str, Any], LimuseConfig]:
    import yaml

    from avtool.core.config import from_dict

    run = Path(run)
    stamp = run / "stage.json"
    if not stamp.is_file() or not (run / "summary.json").is_file():
        raise InputError(f"{run}: no finished LiMuSE run here; run `avtool train limuse` first")
    name = json.loads(stamp.read_text()).get("name")
    if name not in ("train.limuse", "quantize.limuse"):
        raise InputError(f"{run}: holds stage {name!r}, not a `train limuse` run")
    summary = json.loads((run / "summary.json").read_text())
    train_run = Path(summary.get("source_run", run))
    stored = yaml.safe_load((train_run / "config.yaml").read_text())["config"]
    return summary, from_dict(LimuseConfig, stored)


# --- quantize ---------------------------------------------------------------------------------


def quantize_limuse(
    run: Path,
    out: Path,
    config: QuantizeConfig,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Fine-tune a quantized copy of a trained run; write the packed model and check it."""
    import torch

    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status
    from avtool.quant.pack import export_packed, load_packed
    from avtool.quant.weights import quantize_model, set_temperature
    from avtool.train import checkpoint
    from avtool.train.loop import fit

    run, out = Path(run).resolve(), Path(out)
    summary, run_config = _read_run(run)
    if "source_run" in summary:
        raise InputError(f"{run}: already quantized; quantize its full-precision run")
    stage = Stage(
        "quantize.limuse", QUANTIZE_VERSION, out, {"config": asdict(config), "run": str(run)},
        [run / "stage.json"],
    )  # fmt: skip
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if stage.status().state == "done" and not force:
        return {"state": "up-to-date", **_headline(json.loads((out / "summary.json").read_text()))}
    main_process = int(os.environ.get("RANK", "0")) == 0
    if main_process:
        stage.begin(force=force)
    header = {"arch": summary["arch"], "model": summary["model"]}
    model = build_model(header)
    model.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    quantize_model(model, config.weight_bits, config.act_bits)
    # The epoch count lives in the model's state, so a resumed run keeps its temperature.
    model.register_buffer("quant_steps", torch.zeros((), dtype=torch.long))
    paths = [Path(summary[k]) if summary.get(k) else None for k in ("voiceprint", "face")]
    data = Path(summary["data"])
    train_set = LimuseMixtures(data, "train", *paths, run_config, run_config.max_train_items)
    val_set = LimuseMixtures(data, "valid", *paths, run_config)
    steps_per_epoch = math.ceil(len(train_set) / config.train.batch_size)
    arch = summary["arch"]

    def step(net, teacher, batch):
        module = getattr(net, "module", net)
        epoch = int(module.quant_steps) // steps_per_epoch + 1
        set_temperature(module, config.temperature_per_epoch * epoch)
        module.quant_steps += 1
        return _loss(net, arch, batch)

    fit(
        model,
        train_set,
        config.train,
        out,
        step_fn=step,
        val_set=val_set if len(val_set) else None,
        evaluate_fn=_validate(arch) if len(val_set) else None,
    )
    model.eval()
    size = export_packed(
        model, build_model(header), out / PACKED, header, config.weight_bits, config.act_bits
    )
    loaded, _ = load_packed(out / PACKED, build_model)
    check = LimuseMixtures(data, "test", *paths, run_config)
    check = check if len(check) else train_set
    deviation = 0.0
    with torch.no_grad():
        for position in range(min(config.check_items, len(check))):
            mixture, vp, vis, _ = (t.unsqueeze(0) for t in check[position])
            a = _forward(model, mixture, vp, vis)
            b = _forward(loaded, mixture, vp, vis)
            deviation = max(deviation, float((a - b).abs().max()))
    reference = _fp32_no_gc_bytes(header)
    quant_summary = {
        **summary,
        "source_run": str(run),
        "weight_bits": config.weight_bits,
        "act_bits": config.act_bits,
        "bytes": size,
        "fp32_bytes": 4 * summary["params"],
        "compression_ratio": reference / size,
        "max_deviation": deviation,
        "deviation_items": min(config.check_items, len(check)),
    }
    if main_process:
        atomic.write_json(out / "summary.json", quant_summary)
        stage.finish(
            counts={"bytes": size, "train_items": len(train_set)},
            outputs=["final.pt", "metrics.jsonl", PACKED, "summary.json"],
        )
    return {"state": "done", **_headline(quant_summary)}


# --- evaluate ---------------------------------------------------------------------------------


def load_run_model(run: Path):
    """(model in eval mode, summary): the packed model of a quantized run, else final.pt."""
    from avtool.quant.pack import load_packed
    from avtool.train import checkpoint

    run = Path(run)
    summary, _ = _read_run(run)
    if (run / PACKED).is_file() and "source_run" in summary:
        model, _ = load_packed(run / PACKED, build_model)
        return model, summary
    model = build_model({"arch": summary["arch"], "model": summary["model"]})
    model.load_state_dict(checkpoint.load(run / "final.pt")["model"])
    return model.eval(), summary


def evaluate_limuse(
    run: Path,
    data: Path | None = None,
    split: str = "test",
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """SI-SDR and SI-SDRi of every `split` mixture (one at a time), into `run/evaluation`."""
    import torch

    from avtool.core import atomic
    from avtool.core.journal import write_jsonl
    from avtool.core.stage import Stage, describe_status
    from avtool.metrics.si_sdr import si_sdr_improvement

    run = Path(run).resolve()
    summary, run_config = _read_run(run)
    data = Path(data).resolve() if data else Path(summary["data"])
    paths = [Path(summary[k]) if summary.get(k) else None for k in ("voiceprint", "face")]
    out = run / "evaluation"
    stage = Stage(
        "evaluate.limuse", EVALUATE_VERSION, out, {"run": str(run), "data": str(data), "split": split},
        [run / "stage.json", *_inputs(data, *paths)],
    )  # fmt: skip
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", **_scores(json.loads((out / "results.json").read_text()))}
    model, _ = load_run_model(run)
    mixtures = LimuseMixtures(data, split, *paths, run_config)
    if not len(mixtures):
        raise InputError(f"{data}: no {split} mixture with its cues to evaluate on")
    rows = []
    with torch.no_grad():
        for position in range(len(mixtures)):
            mixture, vp, vis, target = (t.unsqueeze(0) for t in mixtures[position])
            estimate = _estimate(model, summary["arch"], mixture, vp, vis, target)
            value, gain = si_sdr_improvement(estimate, mixture[:, 0], target)
            rows.append(
                {
                    "id": mixtures.items[position]["id"],
                    "si_sdr": float(value),
                    "si_sdri": float(gain),
                }
            )
    values = np.array([r["si_sdr"] for r in rows])
    gains = np.array([r["si_sdri"] for r in rows])
    results = {
        "arch": summary["arch"],
        "groups": summary["model"].get("groups", 1),
        "method": method_name(summary),
        "split": split,
        "items": len(rows),
        "si_sdr": float(values.mean()),
        "si_sdr_std": float(values.std()),
        "si_sdri": float(gains.mean()),
        "si_sdri_std": float(gains.std()),
        "si_sdri_median": float(np.median(gains)),
        "params": summary["params"],
        "bytes": summary.get("bytes", 4 * summary["params"]),
        "packed": "bytes" in summary,
        # Table 2 gives no ratio for the baselines, which are not LiMuSE models.
        "compression_ratio": None
        if summary["arch"] == "tasnet"
        else summary.get("compression_ratio")
        or _fp32_no_gc_bytes(summary) / (4 * summary["params"]),
        "max_deviation": summary.get("max_deviation"),
    }
    write_jsonl(out / "items.jsonl", rows)
    _histogram(out / "si_sdri.png", {results["method"]: gains})
    atomic.write_json(out / "results.json", results)
    stage.finish(
        counts={"items": len(rows)}, outputs=["results.json", "items.jsonl", "si_sdri.png"]
    )
    return {"state": "done", **_scores(results)}


def method_name(summary: dict[str, Any]) -> str:
    if summary["arch"] == "tasnet":
        mics = summary["model"]["channels"]
        return f"TasNet ({'dual' if mics == 2 else 'single'}-channel)"
    model = summary["model"]
    missing = [] if "source_run" in summary else ["Q"]
    if not model["voiceprint_dim"]:
        missing.append("VP")
    if not model["face_dim"]:
        missing.append("VIS")
    if model["groups"] == 1:
        missing.append("GC")
    name = "LiMuSE" + (f" (w/o {' and '.join(missing)})" if missing else "")
    if summary.get("visual_order") == "shuffled":
        name += " [visual shuffled]"
    return name


def _scores(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("method", "items", "si_sdr", "si_sdri", "bytes")
    return {k: results[k] for k in keys}


def _histogram(path: Path, gains: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avtool.core import atomic

    figure, axes = plt.subplots(figsize=(6, 4))
    for label, values in gains.items():
        axes.hist(values, bins=20, alpha=0.5, label=label)
    axes.set_xlabel("SI-SDRi (dB)")
    axes.set_ylabel("mixtures")
    axes.legend(fontsize=7)
    figure.tight_layout()
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)


# --- report -----------------------------------------------------------------------------------


def find_runs(paths: list[Path]) -> list[Path]:
    """Evaluated runs at or under each path, sorted."""
    found = set()
    for path in map(Path, paths):
        if (path / "evaluation" / "results.json").is_file():
            found.add(path.resolve())
        found.update(p.parent.parent.resolve() for p in path.glob("**/evaluation/results.json"))
    return sorted(found)


def report_limuse(
    paths: list[Path], out: Path, force: bool = False, dry_run: bool = False
) -> dict[str, Any]:
    """Table 2 (table.md): method, K, SI-SDR, SI-SDRi, #params, model size, compression ratio,
    with the paper's figures beside ours, and the SI-SDRi histogram of every run."""
    from avtool.core import atomic
    from avtool.core.stage import Stage, describe_status

    runs = find_runs(paths)
    if not runs:
        raise InputError(
            f"{', '.join(map(str, paths))}: no evaluated run; run `avtool evaluate limuse`"
        )
    stamps = [r / "evaluation" / "stage.json" for r in runs]
    stage = Stage("report.limuse", REPORT_VERSION, out, {"runs": [str(r) for r in runs]}, stamps)
    if dry_run:
        return {"state": "dry-run", "message": describe_status(stage, force)}
    if not stage.begin(force=force):
        return {"state": "up-to-date", "table": (Path(out) / "table.md").read_text()}
    header = ["Run", "Method", "K", "SI-SDR (dB)", "SI-SDRi (dB)", "#Params", "Model size",
              "Compression ratio", "Paper SI-SDR", "Paper #Params", "Paper size"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    gains = {}
    for run in runs:
        results = json.loads((run / "evaluation" / "results.json").read_text())
        k = results["groups"] if results["arch"] == "limuse" else 1
        method = results["method"]
        paper = PAPER.get((method.replace(" [visual shuffled]", ""), k), ("–", "–", "–"))
        size = results["bytes"]
        ratio = results.get("compression_ratio")
        lines.append(
            "| " + " | ".join([
                run.name, method, str(k) if k > 1 else "-",
                f"{results['si_sdr']:.2f} ± {results['si_sdr_std']:.2f}",
                f"{results['si_sdri']:.2f} ± {results['si_sdri_std']:.2f}",
                f"{results['params']:,}",
                f"{size:,} B ({size / 1e6:.3f} MB{', packed' if results['packed'] else ''})",
                f"{ratio:.2f}" if ratio else "-",
                str(paper[0]), paper[1], paper[2],
            ]) + " |"
        )  # fmt: skip
        per_item = [
            json.loads(line)
            for line in (run / "evaluation" / "items.jsonl").read_text().splitlines()
            if line
        ]
        gains[f"{run.name}: {method}"] = np.array([r["si_sdri"] for r in per_item])
    table = "\n".join(lines)
    Path(out).mkdir(parents=True, exist_ok=True)
    _histogram(Path(out) / "si_sdri.png", gains)
    atomic.write_text(Path(out) / "table.md", table + "\n\n![SI-SDRi](si_sdri.png)\n")
    stage.finish(counts={"runs": len(runs)}, outputs=["table.md", "si_sdri.png"])
    return {"state": "done", "table": table}
