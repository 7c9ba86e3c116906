"""Face cue: per video frame (25 fps), a 128-d face descriptor and whether a face was found.

Detection: dlib's HOG frontal-face detector (default) or OpenCV's Haar cascade
(`haarcascade_frontalface_default.xml`); the largest face is kept. Embedding: dlib's ResNet
face descriptor (`dlib_face_recognition_resnet_model_v1.dat`, 128-d, aligned with the 5-point
landmark model), both from the `face-recognition-models` package: no download at run time.

Each item is one structured array of `frames` records: `embedding` float32[128] (zeros where no
face was found) and `mask` uint8 (1 where a face was found): `store[id]["embedding"]` is
[frames, 128]. After a complete run, `faceless.json` holds each utterance's share of
face-less frames and the mean.

The LiMuSE paper used the face network of Zhou et al. (AAAI 2019, trained on LRW and
MS-Celeb-1M), whose weights are not published in a form this toolkit can load; dlib's identity
descriptor stands in. dlib's descriptor costs about 80 ms per frame on these CPUs (dlib-bin is
built without BLAS): about 6 s per 3 s GRID video per core.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.core.items import ItemStageResult, run_manifest_stage

STAGE_VERSION = 1
DIM = 128
RECORD = np.dtype([("embedding", np.float32, (DIM,)), ("mask", np.uint8)])
DETECTORS = ("dlib", "haar")


@dataclass
class FaceParams:
    fps: float = 25.0
    detector: str = "dlib"
    # Smallest face the detectors look for, as a share of the frame height.
    min_face: float = 0.2


def model_paths() -> dict[str, Path]:
    import warnings

    with warnings.catch_warnings():
        # The package still imports pkg_resources; its deprecation notice is not ours to fix.
        warnings.simplefilter("ignore", UserWarning)
        import face_recognition_models as models

    return {
        "descriptor": Path(models.face_recognition_model_location()),
        "landmarks": Path(models.pose_predictor_five_point_model_location()),
    }


@dataclass
class FaceWorker:
    params: FaceParams

    def setup(self) -> None:
        import dlib

        if self.params.detector not in DETECTORS:
            raise InputError(f"detector {self.params.detector!r}: expected dlib or haar")
        paths = model_paths()
        self._landmarks = dlib.shape_predictor(str(paths["landmarks"]))
        self._descriptor = dlib.face_recognition_model_v1(str(paths["descriptor"]))
        if self.params.detector == "dlib":
            self._hog = dlib.get_frontal_face_detector()
        else:
            import cv2

            self._haar = cv2.CascadeClassifier(
                cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
            )

    def teardown(self) -> None:
        pass

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        digest = hashlib.sha256()
        for path in model_paths().values():
            digest.update(path.read_bytes())
        params = {**asdict(self.params), "dim": DIM, "fields": ["embedding", "mask"]}
        return store_attrs("face-dlib-resnet", params, digest.hexdigest())

    def _detect(self, frame: np.ndarray) -> Any:
        """The largest face as a dlib rectangle, or None."""
        import dlib

        smallest = int(self.params.min_face * frame.shape[0])
        if self.params.detector == "dlib":
            faces = [f for f in self._hog(frame, 0) if f.height() >= smallest]
        else:
            import cv2

            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            boxes = self._haar.detectMultiScale(gray, 1.1, 4, minSize=(smallest, smallest))
            faces = [dlib.rectangle(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in boxes]
        return max(faces, key=lambda f: f.area(), default=None)

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        from avtool.core.video import iter_frames

        records = []
        for decoded in iter_frames(item["path"], fps=self.params.fps):
            # dlib's bindings take only C-contiguous arrays; PyAV's rows may be padded.
            frame = np.ascontiguousarray(decoded)
            record = np.zeros((), RECORD)
            face = self._detect(frame)
            if face is not None:
                shape = self._landmarks(frame, face)
                record["embedding"] = self._descriptor.compute_face_descriptor(frame, shape)
                record["mask"] = 1
            records.append(record)
        return np.stack(records)


def faceless_report(store_dir: Path) -> dict[str, Any]:
    """Each item's share of frames without a face, and the mean over items."""
    from avtool.core.store import FeatureStore

    store = FeatureStore(store_dir)
    shares = {i: round(1.0 - float(np.mean(store[i]["mask"])), 4) for i in sorted(store)}
    return {
        "items": len(shares),
        "mean_faceless": round(float(np.mean(list(shares.values()))), 4) if shares else 0.0,
        "faceless": shares,
    }


def extract_face(manifest: Path, out: Path, params: FaceParams, **options: Any) -> ItemStageResult:
    """Face descriptors for every video of `manifest` (e.g. `lists/videos.jsonl`) into `out`.

    `options`: shard, jobs, launcher, force, dry_run, max_reject_rate of `run_manifest_stage`.
    """
    from avtool.core import atomic

    if params.detector not in DETECTORS:
        raise InputError(f"--detector {params.detector}: expected one of {', '.join(DETECTORS)}")
    result = run_manifest_stage(
        "features.face", STAGE_VERSION, manifest, out, params, FaceWorker(params), **options
    )
    from avtool.core.shard import resolve_shard

    # One shard of many cannot report on the whole store.
    whole = resolve_shard(options.get("shard")).is_whole
    if result.state in ("done", "up-to-date") and whole:
        report = faceless_report(Path(out))
        atomic.write_json(Path(out) / "faceless.json", report)
        result.message = f"mean share of face-less frames {report['mean_faceless']:.3f}"
    return result
