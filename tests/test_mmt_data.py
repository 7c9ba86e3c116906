"""BSDS layout: synthetic corpus, .mat round trip in the real nesting, prepare and its rejects."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from avtool.core.errors import InputError, ItemError, StageFailed
from avtool.corpora.bsds import PrepareConfig, prepare_bsds, read_ground_truth, read_image
from avtool.synth.bsds import synth_bsds, write_mat


def test_mat_round_trip_has_bsds_nesting(tmp_path):
    maps = [np.arange(12, dtype=np.int64).reshape(3, 4) % 3 + 1, np.ones((3, 4), int)]
    write_mat(tmp_path / "gt.mat", maps)
    mat = scipy.io.loadmat(tmp_path / "gt.mat")
    assert mat["groundTruth"].shape == (1, 2)
    segmentation = mat["groundTruth"][0, 0]["Segmentation"][0, 0]
    assert segmentation.dtype == np.uint16 and np.array_equal(segmentation, maps[0])
    boundaries = mat["groundTruth"][0, 1]["Boundaries"][0, 0]
    assert boundaries.shape == (3, 4) and not boundaries.any()
    read = read_ground_truth(tmp_path / "gt.mat", (3, 4))
    assert [m.tolist() for m in read] == [m.tolist() for m in maps]


def test_synthetic_annotators_agree_inside_regions(tmp_path):
    truth = synth_bsds(tmp_path, count=2, height=32, width=40, seed=3)
    for image_id, info in truth.items():
        maps = read_ground_truth(tmp_path / "groundTruth" / "test" / f"{image_id}.mat")
        assert 3 <= len(maps) == info["annotators"] <= 5
        assert all(m.max() == info["regions"] and m.min() == 1 for m in maps)
        disagree = np.mean([np.mean(m != maps[0]) for m in maps[1:]])
        assert 0 < disagree < 0.1  # only near the boundaries


def test_prepare_accepts_images_without_gt_and_rejects_bad_files(tmp_path):
    root = tmp_path / "bsds"
    synth_bsds(root, count=4, height=24, width=32, seed=1)
    test = root / "images" / "test"
    (root / "groundTruth" / "test" / "100001.mat").unlink()  # segmentation only
    (test / "100002.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "groundTruth" / "test" / "100003.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(StageFailed, match=r"prepare.bsds: 2 of 4 items rejected \(50.0%\)"):
        prepare_bsds(root, tmp_path / "prep", PrepareConfig())
    assert not (tmp_path / "prep" / "stage.json").exists()
    result = prepare_bsds(root, tmp_path / "prep", PrepareConfig(), max_reject_rate=0.5)
    assert result == {"state": "done", "images": 2, "with_gt": 1, "rejected": 2}
    lines = [json.loads(x) for x in (tmp_path / "prep" / "manifest.jsonl").read_text().splitlines()]
    assert {e["id"]: e["gt"] for e in lines} == {
        "100000": "../bsds/groundTruth/test/100000.mat",
        "100001": None,
    }
    rejects = {
        r["id"]: r["reason"]
        for r in map(json.loads, (tmp_path / "prep" / "rejects.jsonl").read_text().splitlines())
    }
    assert "100002.jpg: unreadable image" in rejects["100002"]
    assert "100003.mat: not a readable .mat file" in rejects["100003"]
    again = prepare_bsds(root, tmp_path / "prep", PrepareConfig(), max_reject_rate=0.5)
    assert again["state"] == "up-to-date"


def test_mat_of_wrong_shape_or_fields_is_an_item_error(tmp_path):
    write_mat(tmp_path / "a.mat", [np.ones((5, 5), int)])
    with pytest.raises(ItemError, match="belongs to another image"):
        read_ground_truth(tmp_path / "a.mat", (4, 4))
    scipy.io.savemat(tmp_path / "b.mat", {"other": np.ones(3)})
    with pytest.raises(ItemError, match="no `groundTruth` cell"):
        read_ground_truth(tmp_path / "b.mat")


def test_prepare_without_images_folder_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no images/ folder"):
        prepare_bsds(tmp_path, tmp_path / "out", PrepareConfig())


REAL_BSDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_samples" / "bsds500"


def test_synthetic_mat_follows_the_real_structure_in_both_orientations(tmp_path):
    truth = synth_bsds(tmp_path, count=3, height=12, width=20, seed=5)
    shapes = {info["shape"][0] > info["shape"][1] for info in truth.values()}
    assert shapes == {False, True}  # landscape and portrait
    for image_id, info in truth.items():
        path = tmp_path / "groundTruth" / "test" / f"{image_id}.mat"
        annotators = info["annotators"]
        assert scipy.io.whosmat(path) == [("groundTruth", (1, annotators), "cell")]
        cell = scipy.io.loadmat(path)["groundTruth"]
        for k in range(annotators):
            struct = cell[0, k]
            assert struct.shape == (1, 1)
            assert struct.dtype.names == ("Segmentation", "Boundaries")
            segmentation = struct["Segmentation"][0, 0]
            boundaries = struct["Boundaries"][0, 0]
            assert segmentation.dtype == np.uint16 and boundaries.dtype == np.uint8
            assert segmentation.shape == boundaries.shape == tuple(info["shape"])
            assert np.unique(segmentation).tolist() == list(range(1, segmentation.max() + 1))
            assert set(np.unique(boundaries).tolist()) <= {0, 1}
        image = read_image(tmp_path / "images" / "test" / f"{image_id}.jpg")
        assert image.shape[:2] == tuple(info["shape"])


@pytest.mark.skipif(not REAL_BSDS.is_dir(), reason=f"real BSDS500 samples absent: {REAL_BSDS}")
def test_prepare_reads_the_real_samples_with_default_options(tmp_path):
    result = prepare_bsds(REAL_BSDS, tmp_path / "prep", PrepareConfig())
    assert result == {"state": "done", "images": 3, "with_gt": 3, "rejected": 0}
    rows = {
        e["id"]: e
        for e in map(json.loads, (tmp_path / "prep" / "manifest.jsonl").read_text().splitlines())
    }
    assert {i: (e["height"], e["width"], e["annotators"]) for i, e in rows.items()} == {
        "135069": (321, 481, 5),
        "169012": (321, 481, 9),
        "254054": (481, 321, 4),  # portrait
    }
    maps = read_ground_truth(tmp_path / "prep" / rows["169012"]["gt"], (321, 481))
    assert [int(m.max()) for m in maps] == [14, 12, 33, 14, 14, 24, 21, 16, 19]
