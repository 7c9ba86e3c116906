"""Voiceprint cue: a 256-d speaker embedding (d-vector) per enrolment utterance.

Uses resemblyzer's shipped GE2E speaker encoder (weights inside the wheel, no download):
audio at 16 kHz, volume-normalised and with long silences removed by webrtcvad
(`resemblyzer.preprocess_wav`), embedded with `VoiceEncoder.embed_utterance` (L2-normalised).
The LiMuSE paper used pyannote's 512-d embeddings instead; pyannote's weights come from the
Hugging Face hub behind a user agreement, which this offline toolkit cannot fetch, so the
voiceprint here is 256-d and a model built on it takes a 256-d voiceprint input.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.items import ItemStageResult, SingleThreadTorchWorker, run_manifest_stage

STAGE_VERSION = 1


@dataclass
class VoiceprintParams:
    sr: int = 16000  # resemblyzer's rate


def weights_path() -> Path:
    import resemblyzer

    return Path(resemblyzer.__file__).parent / "pretrained.pt"


@dataclass
class VoiceprintWorker(SingleThreadTorchWorker):
    params: VoiceprintParams

    def load(self) -> None:
        from resemblyzer import VoiceEncoder

        self._encoder = VoiceEncoder("cpu", verbose=False)

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        digest = hashlib.sha256(weights_path().read_bytes()).hexdigest()
        return store_attrs("voiceprint-resemblyzer", {**asdict(self.params), "dim": 256}, digest)

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        from resemblyzer import preprocess_wav

        from avtool.core.audio import load_audio
        from avtool.core.errors import ItemError

        audio, _ = load_audio(item["path"], sr=self.params.sr)
        speech = preprocess_wav(audio, source_sr=self.params.sr)
        if len(speech) < self.params.sr // 4:
            raise ItemError(f"{item['path']}: under 0.25 s of speech after trimming silence")
        return self._encoder.embed_utterance(speech).astype(np.float32)


def extract_voiceprint(
    manifest: Path, out: Path, params: VoiceprintParams, **options: Any
) -> ItemStageResult:
    """Embed every utterance of `manifest` (e.g. `lists/enrolment.jsonl`) into the store `out`.

    `options`: shard, jobs, launcher, force, dry_run, max_reject_rate of `run_manifest_stage`.
    """
    return run_manifest_stage(
        "features.voiceprint",
        STAGE_VERSION,
        manifest,
        out,
        params,
        VoiceprintWorker(params),
        **options,
    )
