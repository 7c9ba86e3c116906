"""MMT recipe end to end on a tiny synthetic BSDS: synth → prepare → methods → evaluate → report."""

import json

import numpy as np

from avtool.core.store import FeatureStore
from avtool.recipes import mmt as recipe

FAST = {
    "mmt": ["--iterations", "4", "--set", "channels=16", "--set", "ema=0.9"],
    "kanezaki": ["--iterations", "4", "--set", "channels=16", "--set", "slic_segments=50"],
    "kim": ["--iterations", "4", "--set", "channels=16", "--set", "mu=[5]"],
    "kmeans": ["--set", "kmeans_k=[2,5]"],
    "felzenszwalb": ["--set", "felzenszwalb_scale=[100,500]"],
}


def test_end_to_end_table_figures_and_seeds(cli, tmp_path):
    assert (
        cli(
            "synth", "bsds", "--out", tmp_path / "bsds", "--count", 3, "--height", 24, "--width", 32
        )[0]
        == 0
    )
    assert cli("prepare", "bsds", "--root", tmp_path / "bsds", "--out", tmp_path / "prep")[0] == 0
    manifest = tmp_path / "prep" / "manifest.jsonl"
    runs = []
    for method, options in FAST.items():
        out = tmp_path / "runs" / method
        code, _, err = cli(
            "train",
            "mmt",
            "--manifest",
            manifest,
            "--out",
            out,
            "--method",
            method,
            "--seeds",
            2,
            "--seed",
            7,
            *options,
        )
        assert code == 0, err
        runs += ["--run", out]
    with FeatureStore(tmp_path / "runs" / "mmt") as store:
        assert store.attrs["params"]["seeds"] == [7, 8]
        maps = store[next(iter(store))]
        assert maps.shape == (1, 2, 24, 32) and maps.dtype == np.int32
    with FeatureStore(tmp_path / "runs" / "kmeans") as store:
        assert store[next(iter(store))].shape == (2, 2, 24, 32)  # k grid × seeds
    code, out, err = cli(
        "evaluate", "mmt", "--manifest", manifest, *runs, "--out", tmp_path / "eval"
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    methods = [row["method"] for row in summary["rows"]]
    assert methods == ["mmt", "kanezaki", "kim", "kmeans", "felzenszwalb"]
    kmeans = summary["rows"][3]
    assert kmeans["accuracy"] > 0.8 and kmeans["seeds"] == [7, 8]  # best k over the corpus
    assert summary["rows"][4]["seeds"] == [7]  # Felzenszwalb is deterministic: one run
    for row in summary["rows"]:
        assert 0 < row["accuracy"] <= 1 and 0 < row["miou"] <= 1 and row["images"] == 3
    code, out, _ = cli("report", "mmt", "--eval", tmp_path / "eval", "--out", tmp_path / "rep")
    assert code == 0 and "| Kanezaki 2018 |" in out
    assert len(list((tmp_path / "rep" / "figures").glob("*.png"))) == 3


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
