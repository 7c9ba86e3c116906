"""wav2vec 2.0 embeddings (transformers `Wav2Vec2Model`) as a per-item stage.

As in the report: audio at 16 kHz through the same trim/normalise preprocessing as the MFCC
features, then the model's last hidden states [frames, hidden] (768 for wav2vec2-base), stored
as their time mean [hidden] or, with `sequence`, whole. The input is normalised to zero mean
and unit variance, which is what wav2vec2-base's feature extractor does (`do_normalize`).

The model loads from a local directory or the local Hugging Face cache only; nothing is
downloaded here (`avtool models fetch` is the place for that). A model whose weights did not
all load (random initialisation) is refused unless `allow_random_weights`, and the store then
says so. `random:tiny` builds a seeded two-layer random model in-process, for the demo.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, InputError
from avtool.core.items import ItemStageResult, SingleThreadTorchWorker, run_manifest_stage

STAGE_VERSION = 1
DEFAULT_MODEL = "facebook/wav2vec2-base"
RANDOM_TINY = "random:tiny"
SR = 16000


@dataclass(frozen=True)
class Wav2Vec2Params:
    model: str = DEFAULT_MODEL
    top_db: float = 20.0
    sequence: bool = False
    allow_random_weights: bool = False


def tiny_random_config():
    """A two-layer, 32-wide Wav2Vec2Config: seconds to run on a CPU, for tests and the demo."""
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32, 32, 32, 32, 32, 32),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=False,
    )


def load_model(params: Wav2Vec2Params):
    """(model in eval mode, whether its weights are random), from local files only."""
    import torch
    from transformers import Wav2Vec2Model

    if params.model == RANDOM_TINY:
        if not params.allow_random_weights:
            raise InputError(
                f"--model {RANDOM_TINY} has random weights; add --allow-random-weights"
            )
        torch.manual_seed(0)
        return Wav2Vec2Model(tiny_random_config()).eval(), True
    from transformers.utils import logging as hf_logging

    from avtool.models.registry import cached_folder

    hf_logging.disable_progress_bar()  # a bar per worker process on stderr is noise here
    # A local folder of that name wins, as in from_pretrained; then a registered name that
    # `avtool models fetch` put in avtool's cache; else the name goes to the Hugging Face cache.
    fetched = None if Path(params.model).is_dir() else cached_folder(params.model)
    try:
        model, info = Wav2Vec2Model.from_pretrained(
            fetched or params.model, local_files_only=True, output_loading_info=True
        )
    except OSError as exc:
        raise InputError(
            f"--model {params.model}: no local wav2vec2 model there or in the Hugging Face "
            f"cache ({exc}); run `avtool models fetch wav2vec2-base` or pass a model folder"
        ) from None
    random = bool(info.get("missing_keys"))
    if random and not params.allow_random_weights:
        raise InputError(
            f"--model {params.model}: {len(info['missing_keys'])} weight tensors are missing "
            "and would be random; use a complete checkpoint or --allow-random-weights"
        )
    return model.eval(), random


def weights_sha256(model) -> str:
    """sha256 over the state dict (names and bytes, sorted): the same for any file format."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Wav2Vec2Worker(SingleThreadTorchWorker):
    params: Wav2Vec2Params

    def load(self) -> None:
        self._model, self._random = load_model(self.params)

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        if not hasattr(self, "_model"):
            self._model, self._random = load_model(self.params)
        attrs = store_attrs(
            "wav2vec2", dataclasses.asdict(self.params), weights_sha256(self._model)
        )
        attrs["random_weights"] = self._random
        return attrs

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        import torch

        from avtool.core.audio import load_audio
        from avtool.features.ser_mfcc import preprocess

        waveform, _ = load_audio(item["path"], sr=SR)
        y = preprocess(waveform, self.params.top_db)
        y = (y - y.mean()) / np.sqrt(y.var() + 1e-7)
        with torch.inference_mode():
            hidden = self._model(torch.from_numpy(y.astype(np.float32))[None]).last_hidden_state[0]
        states = hidden.numpy()
        return states if self.params.sequence else states.mean(axis=0)


def extract_wav2vec2(
    manifest: Path, out: Path, params: Wav2Vec2Params, **options: Any
) -> ItemStageResult:
    """Embeddings of every manifest item into the store `out` (options: run_manifest_stage's)."""
    if not params.model:
        raise ConfigError("--model: give a model folder or a cached name")
    # A missing or random model is refused by the worker's store_attrs, which the runner calls
    # before the stage begins: nothing is left in `out`, and no model is built in this
    # process before a --jobs pool forks.
    return run_manifest_stage(
        "features.wav2vec2", STAGE_VERSION, manifest, out, params, Wav2Vec2Worker(params), **options
    )
