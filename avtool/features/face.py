"""Face cues: per video an identity descriptor, per frame (25 fps) the mouth shape and a mask.

Per video, `identity` is dlib's 128-d ResNet face descriptor
(`dlib_face_recognition_resnet_model_v1.dat`, aligned with the 5-point landmark model) averaged
over `identity_frames` key frames with a face, at least `identity_spacing_s` apart, and
L2-normalised. The descriptor is an identity embedding: on real GRID the frames of one video
agree to cosine 0.995, so computing it on every frame (57 of the 68 ms a frame cost) added
nothing; on the eight real GRID samples the key-frame mean is within cosine 0.9975 of the
all-frame mean, and a frame costs 12x less CPU than detection + descriptor on every frame
(bench/face.py).

Per frame, `mouth` holds the 20 mouth points of dlib's 68-point landmarks (48-67, outer then
inner lip) normalised for position (minus their centroid), roll (rotated so that the line
between the eye centres is horizontal) and scale (divided by the distance between the eye
centres), as 40 numbers (x0, y0, x1, y1, ...), followed by five opening measures in the same
unit: inner-lip height (mean of 61-67, 62-66, 63-65), inner-lip width (60-64), outer-lip height
(mean of 50-58, 51-57, 52-56), outer-lip width (48-54) and the inner aspect (height / width).
These move with the speech: on the eight real GRID clips the inner-lip height correlates with
the 25 fps audio envelope at 0.38-0.59.

Face boxes come from dlib's HOG frontal-face detector (default) or OpenCV's Haar cascade on key
frames, every `detect_every` frames and the last; the largest face is kept. Between two key
frames that both found a face the box is interpolated linearly; where one found a face and the
other did not, every frame between them is detected, so the mask changes on the right frame.
Landmarks run on every frame with a box. All models come from the `face-recognition-models`
package: no download at run time. Real GRID's bbizzn.mpg shows why the mask matters: its first
group of pictures decodes grey (a 1.6 KB I-frame), and no face is found before frame 12.

Each item is an array of one record of a structured dtype (`store[id][0]`): `identity`
float32[128] (zeros when no frame has a face), `mouth` float32[frames, 45] (zeros where no face
was found), `mask` uint8[frames] (1 where a face was found), `box` float32[frames, 4] (left,
top, right, bottom in pixels). A face that comes and goes between two key frames without a
face is missed (at most `detect_every` - 1 frames). `read_visual(store, id)` returns (mouth, identity). A video that decodes to fewer than
`min_frame_share` of the frames its audio length implies (the manifest's `seconds`, else the
video's own audio track) is rejected as truncated. After a complete run, `faceless.json` holds
each video's share of face-less frames and the mean.

Departure from the paper: LiMuSE used the face network of Zhou et al. (AAAI 2019, trained on
LRW and MS-Celeb-1M), whose lip-reading features are not published in a form this toolkit can
load; dlib's identity descriptor and 68-point mouth geometry stand in for it.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError, ItemError
from avtool.core.items import ItemStageResult, SingleThreadWorker, run_manifest_stage

STAGE_VERSION = 2
IDENTITY_DIM = 128
MOUTH_POINTS = tuple(range(48, 68))
MOUTH_MEASURES = ("inner_height", "inner_width", "outer_height", "outer_width", "inner_aspect")
MOUTH_DIM = 2 * len(MOUTH_POINTS) + len(MOUTH_MEASURES)
MOUTH_COLUMNS = [f"{axis}{p}" for p in MOUTH_POINTS for axis in "xy"] + list(MOUTH_MEASURES)
# Landmark pairs of the opening measures: inner-lip heights, inner width, outer heights, outer width.
_SPANS = np.array([(61, 67), (62, 66), (63, 65), (60, 64), (50, 58), (51, 57), (52, 56), (48, 54)])
DETECTORS = ("dlib", "haar")
EXTRACTOR = "face-dlib-mouth-identity"


@dataclass
class FaceParams:
    fps: float = 25.0
    detector: str = "dlib"
    # Smallest face the detectors look for, as a share of the frame height.
    min_face: float = 0.2
    # Faces are detected on every k-th frame (and the last); boxes are interpolated between.
    detect_every: int = 10
    # The identity descriptor is the mean over this many key frames with a face ...
    identity_frames: int = 2
    # ... taken at least this far apart.
    identity_spacing_s: float = 1.0
    # Fewer decoded frames than this share of what the audio length implies: truncated.
    min_frame_share: float = 0.9


def model_paths() -> dict[str, Path]:
    import warnings

    with warnings.catch_warnings():
        # The package still imports pkg_resources; its deprecation notice is not ours to fix.
        warnings.simplefilter("ignore", UserWarning)
        import face_recognition_models as models

    return {
        "descriptor": Path(models.face_recognition_model_location()),
        "landmarks5": Path(models.pose_predictor_five_point_model_location()),
        "landmarks68": Path(models.pose_predictor_model_location()),
    }


@functools.lru_cache(maxsize=4)
def _models_digest(stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for path, _, _ in stamp:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def models_sha256() -> str:
    """One sha256 over the three model files (cached per process while they are unchanged)."""
    stamp = []
    for path in model_paths().values():
        info = os.stat(path)
        stamp.append((str(path), info.st_size, info.st_mtime_ns))
    return _models_digest(tuple(stamp))


def record_dtype(frames: int) -> np.dtype:
    """The structured dtype of one video's record."""
    return np.dtype(
        [
            ("identity", np.float32, (IDENTITY_DIM,)),
            ("mouth", np.float32, (frames, MOUTH_DIM)),
            ("mask", np.uint8, (frames,)),
            ("box", np.float32, (frames, 4)),
        ]
    )


def mouth_features(points: np.ndarray) -> np.ndarray:
    """float32[MOUTH_DIM] from the 68 landmarks [68, 2] (see the module docstring)."""
    left_eye, right_eye = points[36:42].mean(0), points[42:48].mean(0)
    dx, dy = right_eye - left_eye
    scale = float(np.hypot(dx, dy))
    if scale <= 0:
        return np.zeros(MOUTH_DIM, np.float32)
    cos, sin = dx / scale, dy / scale
    unroll = np.array([[cos, sin], [-sin, cos]])
    mouth = points[48:68]
    normalised = (mouth - mouth.mean(0)) @ unroll.T / scale
    spans = np.hypot(*(points[_SPANS[:, 0]] - points[_SPANS[:, 1]]).T) / scale
    inner_height, inner_width = spans[:3].mean(), spans[3]
    aspect = inner_height / inner_width if inner_width > 0 else 0.0
    measures = [inner_height, inner_width, spans[4:7].mean(), spans[7], aspect]
    return np.concatenate([normalised.ravel(), measures]).astype(np.float32)


def _expected_seconds(item: dict[str, Any]) -> float | None:
    """Seconds of audio that go with the video: the manifest's, else the video's own track."""
    if item.get("seconds"):
        return float(item["seconds"])
    from avtool.core.audio import audio_info

    try:
        return audio_info(item["path"]).duration
    except ItemError:  # a silent video: nothing to compare the frame count with
        return None


@dataclass
class FaceWorker(SingleThreadWorker):
    params: FaceParams

    def load(self) -> None:
        import dlib

        if self.params.detector not in DETECTORS:
            raise InputError(f"detector {self.params.detector!r}: expected dlib or haar")
        paths = model_paths()
        self._landmarks5 = dlib.shape_predictor(str(paths["landmarks5"]))
        self._landmarks68 = dlib.shape_predictor(str(paths["landmarks68"]))
        self._descriptor = dlib.face_recognition_model_v1(str(paths["descriptor"]))
        if self.params.detector == "dlib":
            self._hog = dlib.get_frontal_face_detector()
        else:
            import cv2

            self._haar = cv2.CascadeClassifier(
                cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
            )

    def store_attrs(self) -> dict[str, Any]:
        from avtool.core.store import store_attrs

        params = {
            **asdict(self.params),
            "identity_dim": IDENTITY_DIM,
            "mouth_dim": MOUTH_DIM,
            "mouth_columns": MOUTH_COLUMNS,
            "fields": ["identity", "mouth", "mask", "box"],
        }
        return store_attrs(EXTRACTOR, params, models_sha256())

    def detect(self, frame: np.ndarray) -> np.ndarray | None:
        """The largest face as float [left, top, right, bottom], or None."""
        smallest = int(self.params.min_face * frame.shape[0])
        if self.params.detector == "dlib":
            faces = [
                (f.left(), f.top(), f.right(), f.bottom())
                for f in self._hog(frame, 0)
                if f.height() >= smallest
            ]
        else:
            import cv2

            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            boxes = self._haar.detectMultiScale(gray, 1.1, 4, minSize=(smallest, smallest))
            faces = [(x, y, x + w, y + h) for x, y, w, h in boxes]
        best = max(faces, key=lambda f: (f[2] - f[0]) * (f[3] - f[1]), default=None)
        return None if best is None else np.array(best, np.float64)

    def landmarks(self, frame: np.ndarray, box: np.ndarray, points: int = 68) -> Any:
        import dlib

        rect = dlib.rectangle(*(round(float(v)) for v in box))
        predictor = self._landmarks68 if points == 68 else self._landmarks5
        return predictor(frame, rect)

    def identity(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """dlib's 128-d descriptor of the face in `box` (5-point alignment, as dlib trains it)."""
        shape = self.landmarks(frame, box, points=5)
        return np.asarray(self._descriptor.compute_face_descriptor(frame, shape), np.float64)

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        from avtool.core.video import iter_frames

        every = max(1, int(self.params.detect_every))
        spacing = self.params.identity_spacing_s * self.params.fps
        boxes: list[np.ndarray | None] = []
        mouths: list[np.ndarray] = []
        identities: list[np.ndarray] = []
        last_identity = -np.inf
        # Frames since the last key frame, kept until the next key frame resolves their boxes.
        pending: list[np.ndarray] = []
        key: tuple[int, np.ndarray, np.ndarray | None] | None = None

        def finish(frame: np.ndarray, box: np.ndarray | None) -> None:
            boxes.append(box)
            if box is None:
                mouths.append(np.zeros(MOUTH_DIM, np.float32))
                return
            shape = self.landmarks(frame, box)
            points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
            mouths.append(mouth_features(points))

        def resolve(start: tuple[int, np.ndarray, np.ndarray | None], between: list, end) -> None:
            (a, _, box_a), (b, frame_b, box_b) = start, end
            for offset, frame in enumerate(between, start=1):
                if box_a is not None and box_b is not None:
                    box = box_a + (box_b - box_a) * offset / (b - a)
                elif box_a is None and box_b is None:
                    box = None
                else:  # the face came or went between the two key frames
                    box = self.detect(frame)
                finish(frame, box)
            finish(frame_b, box_b)

        index = -1
        for index, decoded in enumerate(iter_frames(item["path"], fps=self.params.fps)):
            # dlib's bindings take only C-contiguous arrays; PyAV's rows may be padded.
            frame = np.ascontiguousarray(decoded)
            if index % every:
                pending.append(frame)
                continue
            current = (index, frame, self.detect(frame))
            if key is None:
                finish(frame, current[2])
            else:
                resolve(key, pending, current)
            pending = []
            key = current
            if (
                current[2] is not None
                and len(identities) < self.params.identity_frames
                and index - last_identity >= spacing
            ):
                identities.append(self.identity(frame, current[2]))
                last_identity = index
        if pending and key is not None:
            last = (index, pending[-1], self.detect(pending[-1]))
            resolve(key, pending[:-1], last)
            if not identities and last[2] is not None:
                identities.append(self.identity(last[1], last[2]))
        self._check_length(item, len(boxes))
        record = np.zeros(1, record_dtype(len(boxes)))
        record["mouth"][0] = np.stack(mouths)
        record["mask"][0] = [box is not None for box in boxes]
        record["box"][0] = [np.zeros(4) if box is None else box for box in boxes]
        if identities:
            mean = np.mean(identities, axis=0)
            record["identity"][0] = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return record

    def _check_length(self, item: dict[str, Any], frames: int) -> None:
        seconds = _expected_seconds(item)
        if seconds is None:
            return
        expected = seconds * self.params.fps
        if frames < self.params.min_frame_share * expected:
            raise ItemError(
                f"{item['path']}: truncated video, {frames} frames decoded where its "
                f"{seconds:.3f} s of audio imply {expected:.0f}; re-extract or re-download it"
            )


def read_visual(store: Any, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(mouth float32 [frames, mouth_dim], identity float32 [identity_dim]) of one video.

    `store` is a `FeatureStore` made by `features face` (or its directory). Frames without a
    face hold zeros in `mouth`; `store[video_id]["mask"]` says which.
    """
    from avtool.core.store import FeatureStore

    if not isinstance(store, FeatureStore):
        store = FeatureStore(store)
    if store.attrs.get("extractor") != EXTRACTOR:
        raise InputError(
            f"{store.path}: made by {store.attrs.get('extractor')!r}, not {EXTRACTOR}; "
            "re-run `avtool features face`"
        )
    record = store[video_id][0]
    return (
        np.asarray(record["mouth"], np.float32),
        np.asarray(record["identity"], np.float32),
    )


def opening_envelope_correlation(
    mouth: np.ndarray, mask: np.ndarray, audio: np.ndarray, sr: int, fps: float = 25.0
) -> float:
    """Pearson r between the inner-lip height and the audio's RMS envelope at `fps`.

    The envelope of frame k is the RMS of the samples in [k/fps, (k+1)/fps) (zero-padded past
    the end); only frames with a face count. A check that the mouth cue carries the speech.
    """
    frames = len(mouth)
    edges = np.round(np.arange(frames + 1) * sr / fps).astype(int)
    padded = np.pad(audio, (0, max(0, edges[-1] - len(audio))))
    envelope = np.array(
        [np.sqrt(np.mean(padded[a:b] ** 2)) for a, b in itertools.pairwise(edges.tolist())]
    )
    found = np.asarray(mask, bool)
    opening = mouth[found, MOUTH_COLUMNS.index("inner_height")]
    if found.sum() < 3 or np.std(opening) == 0 or np.std(envelope[found]) == 0:
        return 0.0
    return float(np.corrcoef(opening, envelope[found])[0, 1])


def faceless_report(store_dir: Path) -> dict[str, Any]:
    """Each item's share of frames without a face, and the mean over items."""
    from avtool.core.store import FeatureStore

    store = FeatureStore(store_dir)
    shares = {i: round(1.0 - float(np.mean(store[i][0]["mask"])), 4) for i in sorted(store)}
    return {
        "items": len(shares),
        "mean_faceless": round(float(np.mean(list(shares.values()))), 4) if shares else 0.0,
        "faceless": shares,
    }


def extract_face(manifest: Path, out: Path, params: FaceParams, **options: Any) -> ItemStageResult:
    """Face cues for every video of `manifest` (e.g. `lists/videos.jsonl`) into `out`.

    `options`: shard, jobs, launcher, force, dry_run, max_reject_rate of `run_manifest_stage`.
    """
    from avtool.core import atomic
    from avtool.core.shard import resolve_shard

    if params.detector not in DETECTORS:
        raise InputError(f"--detector {params.detector}: expected one of {', '.join(DETECTORS)}")
    if params.detect_every < 1 or params.identity_frames < 1:
        raise InputError("detect_every and identity_frames must be 1 or more")
    result = run_manifest_stage(
        "features.face", STAGE_VERSION, manifest, out, params, FaceWorker(params), **options
    )
    # One shard of many cannot report on the whole store.
    whole = resolve_shard(options.get("shard")).is_whole
    if result.state in ("done", "up-to-date") and whole:
        report = faceless_report(Path(out))
        atomic.write_json(Path(out) / "faceless.json", report)
        result.message = f"mean share of face-less frames {report['mean_faceless']:.3f}"
    return result
