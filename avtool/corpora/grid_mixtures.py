"""LiMuSE's dual-channel GRID mixtures: a per-item stage over `lists/mixtures.jsonl`.

Each mixture: the target and interfering utterances (first `samples` at `sr`; zero-padded at
the end when up to `length_tolerance_s` shorter, as real GRID's 2.978 s tracks are, the padding
recorded in mixtures.jsonl as `target_pad_s`/`interferer_pad_s`), spatialised by
an anechoic pyroomacoustics simulation (2 microphones `mic_spacing_m` apart, centred at the
origin on the x axis, microphone 0 at +x; each source in the horizontal plane at its azimuth
and distance), then the interferer's images scaled so that the target-to-interferer ratio at
microphone 0 is the mixture's SNR. Written as 16-bit wavs:
`mix/<split>/<id>-mix.wav` (2 channels) and `<id>-target.wav` (the target at microphone 0),
both scaled by one gain so that the mixture peaks at 0.9. The SNR is defined at microphone 0,
after propagation, so it can be measured back from the two files.
Signals keep their propagation delays (up to 5 m / 343 m/s = 233 samples at 16 kHz); the
simulation's fractional-delay filter latency is removed.

The feature store of the stage holds, per mixture, [measured SNR dB, gain]: the per-item
runner's durable record; the wavs are the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError, ItemError
from avtool.corpora.grid import GridConfig

MIX_VERSION = 1
PEAK = 0.9


def simulate(
    sources: list[np.ndarray],
    azimuths: list[float],
    distances: list[float],
    sr: int,
    spacing: float,
) -> np.ndarray:
    """Anechoic images [sources, 2 mics, samples] of each source, latency removed."""
    import pyroomacoustics as pra

    mics = np.array([[spacing / 2, -spacing / 2], [0.0, 0.0], [0.0, 0.0]])
    room = pra.AnechoicRoom(dim=3, fs=sr, mics=mics)
    for signal, azimuth, distance in zip(sources, azimuths, distances, strict=True):
        position = [distance * np.cos(azimuth), distance * np.sin(azimuth), 0.0]
        room.add_source(position, signal=signal)
    premix = room.simulate(return_premix=True)
    # pyroomacoustics delays everything by half its fractional-delay filter.
    latency = pra.constants.get("frac_delay_length") // 2
    length = len(sources[0])
    images = premix[:, :, latency : latency + length]
    return np.pad(images, ((0, 0), (0, 0), (0, length - images.shape[2])))


def expected_delay(azimuth: float, distance: float, spacing: float, c: float = 343.0) -> float:
    """Seconds by which microphone 1 hears a source after microphone 0 (exact, near field)."""
    source = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth)])
    mic0, mic1 = np.array([spacing / 2, 0.0]), np.array([-spacing / 2, 0.0])
    return float((np.linalg.norm(source - mic1) - np.linalg.norm(source - mic0)) / c)


def measure_snr(target: np.ndarray, mixture_mic0: np.ndarray) -> float:
    """Target-to-rest ratio in dB: what a mixture's SNR is, measured back from its files."""
    rest = mixture_mic0 - target
    return float(10 * np.log10(np.sum(target**2) / max(np.sum(rest**2), 1e-20)))


@dataclass
class MixWorker:
    config: GridConfig
    lists_dir: Path
    out_dir: Path

    def setup(self) -> None:
        import pyroomacoustics  # noqa: F401  (pay the import once, not in the first item)

    def teardown(self) -> None:
        pass

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        return store_attrs("grid-mixture-stats", {"columns": ["snr_db_measured", "gain"]})

    def _load(self, item: dict[str, Any], role: str) -> np.ndarray:
        from avtool.core.audio import load_audio

        relative = item.get(f"{role}_audio")
        if relative is None:
            raise ItemError(
                f"mixture {item['id']}: {role} utterance {item[role]} is not in the index "
                "(missing from the corpus or rejected; see index/rejects.jsonl)"
            )
        audio, _ = load_audio(self.lists_dir / relative, sr=self.config.sr)
        needed = self.config.samples
        shortfall = needed - len(audio)
        if shortfall > self.config.length_tolerance_s * self.config.sr:
            raise ItemError(
                f"{self.lists_dir / relative}: {len(audio)} samples at {self.config.sr} Hz, "
                f"shorter than the {needed} needed"
            )
        return np.pad(audio[:needed], (0, max(0, shortfall))).astype(np.float64)

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        import soundfile

        from avtool.core import atomic

        if (
            item["target"] == item["interferer"]
            or item["target"].split("_")[0] == item["interferer"].split("_")[0]
        ):
            raise ItemError(f"mixture {item['id']}: target and interferer share a speaker")
        target, interferer = self._load(item, "target"), self._load(item, "interferer")
        images = simulate(
            [target, interferer],
            [item["target_azimuth"], item["interferer_azimuth"]],
            [item["target_distance"], item["interferer_distance"]],
            self.config.sr,
            self.config.mic_spacing_m,
        )
        power_t, power_i = np.sum(images[0, 0] ** 2), np.sum(images[1, 0] ** 2)
        if power_t <= 0 or power_i <= 0:
            raise ItemError(f"mixture {item['id']}: a silent utterance; cannot set an SNR")
        scale = np.sqrt(power_t / (power_i * 10 ** (item["snr_db"] / 10)))
        mixture = images[0] + scale * images[1]
        gain = PEAK / max(float(np.max(np.abs(mixture))), 1e-9)
        mixture, heard = mixture * gain, images[0, 0] * gain
        folder = self.out_dir / item["split"]
        # Target first: a mixture file never exists without its target.
        for name, data in (
            (f"{item['id']}-target.wav", heard),
            (f"{item['id']}-mix.wav", mixture.T),
        ):
            with atomic.atomic_path(folder / name) as tmp:
                soundfile.write(tmp, data, self.config.sr, format="WAV", subtype="PCM_16")
        written_t, _ = soundfile.read(folder / f"{item['id']}-target.wav")
        written_m, _ = soundfile.read(folder / f"{item['id']}-mix.wav")
        return np.array([measure_snr(written_t, written_m[:, 0]), gain], np.float32)


def mix_grid(
    lists_dir: Path,
    out: Path,
    config: GridConfig,
    shard: str | None = None,
    jobs: int = 1,
    launcher: str = "local",
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> Any:
    """Stage `prepare.grid.mix`: write every mixture of `lists_dir/mixtures.jsonl` under `out`."""
    from avtool.core.items import ItemStageSpec, run_item_stage
    from avtool.core.journal import read_jsonl

    lists_dir, out = Path(lists_dir).resolve(), Path(out).resolve()
    mixtures = lists_dir / "mixtures.jsonl"
    spec = ItemStageSpec(
        name="prepare.grid.mix",
        version=MIX_VERSION,
        out_dir=out,
        config=config,
        worker=MixWorker(config, lists_dir, out),
        items=list(read_jsonl(mixtures)),
        inputs=[mixtures],
        max_reject_rate=max_reject_rate,
        force=force,
    )
    return run_item_stage(spec, shard=shard, jobs=jobs, launcher=launcher, dry_run=dry_run)


def prepare_grid(
    root: Path,
    out: Path,
    config: GridConfig,
    mixture_lists: list[Path] | None = None,
    shard: str | None = None,
    jobs: int = 1,
    launcher: str = "local",
    force: bool = False,
    dry_run: bool = False,
    max_reject_rate: float = 0.2,
) -> dict[str, Any]:
    """`avtool prepare grid`: index, lists, then mixing, each skipping what is done.

    Under `--shard` (SLURM arrays) every task runs the index and lists stages too; they are
    deterministic and written atomically, but it is cheaper to run them once first
    (`prepare grid ... --set mixtures.train=...` without --shard, or `--dry-run` to check).
    """
    from avtool.corpora.grid import build_index, build_lists

    out = Path(out)
    index = build_index(
        root,
        out / "index",
        config,
        force=force,
        dry_run=dry_run,
        max_reject_rate=max_reject_rate,
    )
    if dry_run:
        messages = [index["message"]]
        later = (
            lambda: build_lists(out / "index", out / "lists", config, mixture_lists, force, True),
            lambda: {"message": mix_grid(out / "lists", out / "mix", config, dry_run=True).message},
        )
        for describe in later:
            try:
                messages.append(describe()["message"])
            except InputError as exc:  # an earlier stage has not made this one's input yet
                messages.append(f"would run once the earlier stages have run ({exc})")
        return {"state": "dry-run", "message": "\n".join(messages)}
    lists = build_lists(out / "index", out / "lists", config, mixture_lists, force=force)
    result = mix_grid(
        out / "lists",
        out / "mix",
        config,
        shard=shard,
        jobs=jobs,
        launcher=launcher,
        force=force,
        max_reject_rate=max_reject_rate,
    )
    return {
        "state": result.state,
        "utterances": index.get("utterances", 0),
        "utterances_rejected": index.get("rejected", 0),
        "utterances_padded": index.get("padded", 0),
        "align_warnings": index.get("align_warnings", 0),
        "speakers_missing": index.get("speakers_missing", 0),
        **{k: v for k, v in lists.items() if k != "state"},
        **{f"mix_{k}": v for k, v in result.counts.items()},
    }
