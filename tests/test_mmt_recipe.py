"""MMT recipe end to end on a tiny synthetic BSDS: synth → prepare → methods → evaluate → report."""

import json
import logging

import h5py
import numpy as np
import pytest

from avtool.core.errors import InputError
from avtool.core.store import FeatureStore, StoreWriter, store_attrs
from avtool.recipes import mmt as recipe

FAST = {
    "mmt": ["--iterations", "3", "--set", "channels=8", "--set", "ema=0.9", "--set", "beta=[1,5]"],
    "kanezaki": ["--iterations", "3", "--set", "channels=8", "--set", "slic_segments=30"],
    "kim": ["--iterations", "3", "--set", "channels=8", "--set", "mu=[1,5]"],
    "kmeans": ["--set", "kmeans_k=[2,5,8]"],
    "felzenszwalb": ["--set", "felzenszwalb_scale=[100,500]"],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 images, 3 val and 3 test (one of each portrait), prepared."""
    from avtool.corpora.bsds import PrepareConfig, prepare_bsds
    from avtool.synth.bsds import synth_bsds

    root = tmp_path_factory.mktemp("mmt")
    synth_bsds(root / "bsds", count=6, height=16, width=24, splits=("val", "test"))
    prepare_bsds(root / "bsds", root / "prep", PrepareConfig())
    return root, root / "prep" / "manifest.jsonl"


def test_end_to_end_rows_per_run_selection_on_val_and_figures(cli, corpus):
    root, manifest = corpus
    runs = []
    for method, options in FAST.items():
        out = root / "runs" / method
        seeds = ["--seeds", 2, "--seed", 7] if method in ("mmt", "kmeans") else []
        code, _, err = cli(
            "train", "mmt", "--manifest", manifest, "--out", out, "--method", method,
            *seeds, *options,
        )  # fmt: skip
        assert code == 0, err
        runs += ["--run", out]
    with FeatureStore(root / "runs" / "mmt") as store:
        assert store.attrs["params"]["seeds"] == [7, 8]
        maps = store["100001"]
        assert maps.shape == (2, 2, 16, 24) and maps.dtype == np.uint8  # compact, lossless
        assert store["100002"].shape == (2, 2, 24, 16)  # portrait
    code, out, err = cli("evaluate", "mmt", "--manifest", manifest, *runs, "--out", root / "ev")
    assert code == 0, err
    summary = json.loads((root / "ev" / "summary.json").read_text())
    rows = summary["rows"]
    # Every grid value has its row; exactly one chosen per run.
    assert [r["label"] for r in rows if r["method"] == "kmeans"] == [
        "k-means (k=2)",
        "k-means (k=5)",
        "k-means (k=8)",
    ]
    assert len(rows) == 2 + 1 + 2 + 3 + 2
    assert [r["label"] for r in rows if r["method"] == "mmt"] == [
        "MMT (ours in the paper) (β=1)",
        "MMT (ours in the paper) (β=5)",
    ]
    for name in FAST:
        assert sum(r["chosen"] for r in rows if r["run_name"] == name) == 1
    # The chosen k is the best on val, whatever test says; rows report test images only.
    scores = [json.loads(line) for line in (root / "ev" / "scores.jsonl").read_text().splitlines()]
    val = {
        v: np.mean(
            [
                s["accuracy"]
                for s in scores
                if s["method"] == "kmeans" and s["variant"] == v and s["split"] == "val"
            ]
        )
        for v in range(3)
    }
    chosen = next(r for r in rows if r["method"] == "kmeans" and r["chosen"])
    assert chosen["variant"] == max(val, key=val.get) and chosen["selection"] == "best on val"
    assert chosen["selection_accuracy"] == pytest.approx(val[chosen["variant"]])
    assert all(r["images"] == 3 and r["missing"] == 0 for r in rows)
    mmt_row = next(r for r in rows if r["method"] == "mmt" and r["chosen"])
    assert (mmt_row["iterations"], mmt_row["channels"], mmt_row["n_conv"]) == (3, 8, 3)
    assert mmt_row["seeds"] == [7, 8] and mmt_row["selection"] == "best on val"
    code, out, _ = cli("report", "mmt", "--eval", root / "ev", "--out", root / "rep")
    assert code == 0 and "| kanezaki | Kanezaki 2018 | ✓ single setting | – | 3 | 8 | 2 |" in out
    assert "grid values chosen on the val split and applied to test" in out
    assert sorted(p.name for p in (root / "rep" / "figures").glob("*.png")) == [
        "100001.png",
        "100003.png",
        "100005.png",
    ]


def test_runs_stay_separate_and_a_partial_run_is_flagged(corpus, caplog):
    root, manifest = corpus
    lines = manifest.read_text().splitlines()
    partial = root / "prep" / "partial.jsonl"  # paths are relative to the manifest
    kept = [line for line in lines if '"test"' in line and '"100005"' not in line]
    partial.write_text("\n".join(kept) + "\n")  # two of the three test images, no val
    config = recipe.SegmentConfig(method="kmeans", kmeans_k=[2, 5], seeds=1)
    recipe.segment(manifest, root / "k_all", config)
    recipe.segment(partial, root / "k_part", recipe.SegmentConfig(method="kmeans", kmeans_k=[3]))
    with caplog.at_level(logging.WARNING, logger="avtool.mmt"):
        result = recipe.evaluate(
            manifest, [root / "k_all", root / "k_part"], root / "ev2", select="test"
        )
    rows = result["rows"]
    assert [(r["run_name"], r["label"]) for r in rows] == [
        ("k_all", "k-means (k=2)"),
        ("k_all", "k-means (k=5)"),
        ("k_part", "k-means (k=3)"),
    ]
    assert rows[2]["missing"] == 1 and rows[2]["images"] == 2 and rows[0]["missing"] == 0
    assert "1 of the manifest's 3 test images are not in this run (100005)" in caplog.text
    assert rows[0]["accuracy"] != rows[2]["accuracy"]
    chosen = next(r for r in rows if r["chosen"] and r["run_name"] == "k_all")
    assert chosen["selection"] == "best on test (optimistic)"
    assert chosen["accuracy"] == max(r["accuracy"] for r in rows[:2])
    table = recipe.table_markdown(json.loads((root / "ev2" / "summary.json").read_text()))
    assert "| 2 ⚠ 1 missing |" in table and "⚠ Runs lacking images of the manifest: k_part" in table
    fixed = recipe.evaluate(
        manifest, [root / "k_all"], root / "ev3", select="fixed", fixed=recipe.parse_fixed(["k=5"])
    )
    assert [r["chosen"] for r in fixed["rows"]] == [False, True]
    assert fixed["rows"][1]["selection"] == "fixed k=5"
    with pytest.raises(InputError, match="name the value with --fixed k=VALUE"):
        recipe.evaluate(manifest, [root / "k_all"], root / "ev4", select="fixed")
    with pytest.raises(InputError, match=r"has k in \{2, 5\} only"):
        recipe.evaluate(manifest, [root / "k_all"], root / "ev5", select="fixed", fixed={"k": 8})
    grid_without_val = recipe.SegmentConfig(method="kmeans", kmeans_k=[2, 3])
    recipe.segment(partial, root / "k_part_grid", grid_without_val)
    with pytest.raises(InputError, match="has no val images segmented"):
        recipe.evaluate(manifest, [root / "k_part_grid"], root / "ev6", select="val")


def test_old_int32_stores_are_read_and_other_arrays_refused(corpus):
    root, manifest = corpus
    ids = [json.loads(line)["id"] for line in manifest.read_text().splitlines()]
    params = {"method": "kmeans", "variants": [{"k": 2}], "seeds": [0], "selection": "best"}
    reference = root / "k_ref"
    recipe.segment(manifest, reference, recipe.SegmentConfig(method="kmeans", kmeans_k=[2]))
    old = StoreWriter(root / "old", "00000-of-00001", store_attrs("mmt.segment.kmeans", params))
    bad = StoreWriter(root / "bad", "00000-of-00001", store_attrs("mmt.segment.kmeans", params))
    with FeatureStore(reference) as store:
        for item_id in ids:
            old.add(item_id, store[item_id].astype(np.int32))  # as SEGMENT_VERSION 2 wrote
            bad.add(item_id, store[item_id].astype(np.float32))
    old.finalize()
    bad.finalize()
    new = recipe.evaluate(manifest, [reference], root / "ev_new", select="test")["rows"]
    read = recipe.evaluate(manifest, [root / "old"], root / "ev_old", select="test")["rows"]
    assert read[0]["accuracy"] == new[0]["accuracy"] and read[0]["miou"] == new[0]["miou"]
    with pytest.raises(InputError, match=r"not integer .* label maps; rerun `avtool train mmt`"):
        recipe.evaluate(manifest, [root / "bad"], root / "ev_bad", select="test")


def test_progress_within_an_image_is_logged(corpus, caplog, monkeypatch):
    root, manifest = corpus
    monkeypatch.setattr(recipe.segment_module, "PROGRESS_SECONDS", (0.0, 0.0))
    config = recipe.SegmentConfig(method="mmt", iterations=2, channels=8, ema=0.9)
    with caplog.at_level(logging.INFO, logger="avtool.mmt"):
        recipe.segment(manifest, root / "progress", config)
    lines = [r.getMessage() for r in caplog.records if r.name == "avtool.mmt"]
    assert len(lines) == 6 * 2
    assert (
        lines[0].startswith("100000 beta=5 seed 0: iteration 1/2, loss ") and "segments" in lines[0]
    )


def test_compact_labels_pick_the_smallest_unsigned_type(tmp_path):
    small = recipe.compact_labels(np.array([[0, 99]]))
    assert small.dtype == np.uint8 and small.tolist() == [[0, 99]]
    assert recipe.compact_labels(np.array([0, 256])).dtype == np.uint16
    assert recipe.compact_labels(np.array([70_000])).dtype == np.uint32
    with pytest.raises(ValueError, match="non-negative"):
        recipe.compact_labels(np.array([-1, 2]))
    # Bytes on disk: a [7, 3, 321, 481] k-means grid in uint8 is a quarter of int32's.
    maps = np.random.default_rng(0).integers(0, 20, size=(7, 3, 64, 96))
    sizes = {}
    for kind in (np.int32, recipe.compact_labels(maps).dtype):
        with h5py.File(tmp_path / f"{np.dtype(kind).name}.h5", "w") as handle:
            handle.create_dataset("x", data=maps.astype(kind))
        sizes[np.dtype(kind).name] = (tmp_path / f"{np.dtype(kind).name}.h5").stat().st_size
    assert sizes["uint8"] < 0.26 * sizes["int32"]


def test_resume_segments_only_unfinished_images(tmp_path, monkeypatch):
    from avtool.corpora.bsds import PrepareConfig, prepare_bsds
    from avtool.synth.bsds import synth_bsds

    synth_bsds(tmp_path / "bsds", count=4, height=16, width=16)
    prepare_bsds(tmp_path / "bsds", tmp_path / "prep", PrepareConfig())
    manifest, out = tmp_path / "prep" / "manifest.jsonl", tmp_path / "run"
    config = recipe.SegmentConfig(method="kmeans", kmeans_k=[3], seeds=2)
    recipe.segment(manifest, out, config)
    reference = dict(FeatureStore(out).items())
    # An interrupted run: no stamp, and only two images in the journal.
    (out / "stage.json").unlink()
    journal = out / "journal.jsonl"
    journal.write_text("".join(journal.read_text().splitlines(keepends=True)[:2]))
    segmented = []
    original = recipe.SegmentWorker.__call__
    monkeypatch.setattr(
        recipe.SegmentWorker,
        "__call__",
        lambda self, item: segmented.append(item["id"]) or original(self, item),
    )
    result = recipe.segment(manifest, out, config)
    assert result.state == "done" and len(segmented) == 2
    assert sorted(segmented) == sorted(
        set(reference) - {json.loads(line)["id"] for line in journal.read_text().splitlines()[:2]}
    )
    with FeatureStore(out) as store:
        assert all(np.array_equal(store[i], reference[i]) for i in reference)
    assert recipe.segment(manifest, out, config).state == "up-to-date"


@pytest.mark.parametrize(("bf16_fast", "resolved"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_stored_as_what_it_resolved_to(monkeypatch, bf16_fast, resolved):
    from avtool.models import segmentation as seg

    monkeypatch.setattr(seg, "bf16_is_fast", lambda: bf16_fast)
    params = recipe.stage_params(recipe.SegmentConfig(method="mmt", precision="auto"))
    assert params["precision"] == resolved
    # k-means has no network: no precision, nothing probed.
    assert "precision" not in recipe.stage_params(recipe.SegmentConfig(method="kmeans"))
    fixed = recipe.stage_params(recipe.SegmentConfig(method="kim", precision="fp32"))
    assert fixed["precision"] == "fp32"
