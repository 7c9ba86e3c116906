"""The mixtures of one split with their voiceprint and visual cues.

Inputs: `mixtures.jsonl` of `prepare grid` (two-channel mixture, target at microphone 0), the
enrolment voiceprint (store of `features voiceprint`, keyed by utterance) and the target's
per-frame visual features (store of `features face`, keyed by video). The cue sizes come from
the stores. Visual features are read with `avtool.features.face.read_visual` (mouth shape per
frame and an identity descriptor per video) where the face stage provides it, else from its
per-frame records (`embedding`). `visual_order: shuffled` permutes each item's frames in time
(a fixed permutation per item): the ablation that shows what the lip motion's timing is worth.

Where avtool departs from the paper: the voiceprint is resemblyzer's 256-d d-vector, not
pyannote's 512-d; the visual features are ours (see avtool.features.face), not DAVS lip
features; mixtures whose cue is missing from a store are left out (counted in the summary).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.recipes.limuse.config import LimuseConfig


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


def stage_inputs(data: Path, voiceprint: Path | None, face: Path | None) -> list[Path]:
    paths = [Path(data) / "lists", Path(data) / "mix"]
    return paths + [Path(p) for p in (voiceprint, face) if p is not None]
