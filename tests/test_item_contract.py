"""The per-item contract of #12: one reject verdict for any sharding, item reuse, no debris,
workers that travel without their loaded state, and outputs that honour the umask."""

import json
import os
import stat

import numpy as np
import pytest
from items_helpers import LoadedWorker, RefusingWorker, make_items, spec

from avtool.core.errors import InputError, StageFailed
from avtool.core.items import run_item_stage
from avtool.core.journal import read_jsonl
from avtool.core.store import FeatureStore


def stored(path):
    with FeatureStore(path) as store:
        return {key: store[key] for key in store}


def run_split(out, items, split, **kwargs):
    """Run the stage as `--jobs N` (int) or as every `--shard I/N` in turn (str 'shard/N')."""
    if isinstance(split, int):
        return run_item_stage(spec(out, items, **kwargs), jobs=split)
    count = int(split.split("/")[1])
    for index in range(count):
        result = run_item_stage(spec(out, items, **kwargs), shard=f"{index}/{count}")
    return result


@pytest.mark.parametrize("split", [1, 2, 3, "shard/3"])
def test_one_bad_item_in_six_passes_for_any_split(tmp_path, split):
    # 1 of 6 is under the 0.2 limit; a shard of 2-3 items alone would be over it.
    result = run_split(tmp_path / "o", make_items(5, bad=1), split)
    assert result.state == "done"
    assert json.loads((tmp_path / "o" / "stage.json").read_text())["counts"] == {
        "items": 6,
        "done": 5,
        "rejected": 1,
    }


@pytest.mark.parametrize("split", [1, 2, 3, "shard/3"])
def test_two_bad_items_in_six_fail_alike_for_any_split(tmp_path, split):
    with pytest.raises(StageFailed) as failure:
        run_split(tmp_path / "o", make_items(4, bad=2), split)
    message = str(failure.value)
    assert "2 of 6 items rejected (33.3%)" in message
    assert "commonest: 2 x <file>: unreadable on purpose" in message
    assert "rejects" in message and str(tmp_path / "o") in message
    assert not (tmp_path / "o" / "stage.json").exists()
    # The rerun reaches the same verdict without retrying the rejected items.
    with pytest.raises(StageFailed, match="2 of 6 items rejected"):
        run_split(tmp_path / "o", make_items(4, bad=2), split)


def test_rejects_are_one_summary_line_not_a_warning_each(tmp_path, caplog):
    caplog.set_level("INFO")
    run_item_stage(spec(tmp_path / "o", make_items(300, bad=40)))
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "40 of 340 items rejected" in warnings[0].getMessage()


def stamp_work(out):
    return json.loads((out / "stage.json").read_text())["work"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_grown_manifest_recomputes_only_the_new_item(tmp_path, jobs):
    out = tmp_path / "o"
    items = make_items(51)
    run_item_stage(spec(out, items[:50]), jobs=jobs)
    first = stored(out)
    result = run_item_stage(spec(out, items), jobs=jobs)
    assert result.state == "done" and result.counts["done"] == 51
    computed = sum(
        json.loads(p.read_text()).get("work", {}).get("items_computed", 0)
        for p in out.glob("stage*.json")
        if "work" in json.loads(p.read_text())
    )
    assert computed == 1
    journal_ids = [e["id"] for p in sorted(out.glob("journal*.jsonl")) for e in read_jsonl(p)]
    assert sorted(journal_ids) == sorted(i["id"] for i in items)
    grown = stored(out)
    run_item_stage(spec(tmp_path / "fresh", items), jobs=jobs)
    fresh = stored(tmp_path / "fresh")
    assert sorted(grown) == sorted(fresh)
    assert all(np.array_equal(grown[k], fresh[k]) for k in fresh)
    assert all(np.array_equal(grown[k], first[k]) for k in first)


def test_a_shrunk_manifest_drops_items_and_a_changed_file_reruns(tmp_path):
    out = tmp_path / "o"
    media = tmp_path / "media"
    media.mkdir()
    items = []
    for index in range(10):
        path = media / f"clip{index}.wav"
        path.write_bytes(b"x")
        items.append({"id": f"clip{index}", "path": str(path)})
    run_item_stage(spec(out, items))
    run_item_stage(spec(out, items[:7]))
    assert sorted(stored(out)) == sorted(i["id"] for i in items[:7])
    assert stamp_work(out)["items_computed"] == 0
    assert len(list(read_jsonl(out / "journal.jsonl"))) == 7
    (media / "clip3.wav").write_bytes(b"changed")
    run_item_stage(spec(out, items[:7]))
    assert stamp_work(out)["items_computed"] == 1


def test_a_refused_command_leaves_nothing(tmp_path):
    out = tmp_path / "never"
    with pytest.raises(InputError, match="weights not found"):
        run_item_stage(spec(out, make_items(4), worker=RefusingWorker))
    assert not out.exists()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_loaded_workers_travel_without_their_state(tmp_path, monkeypatch, method):
    monkeypatch.setenv("AVTOOL_START_METHOD", method)
    run_item_stage(spec(tmp_path / "two", make_items(12), worker=LoadedWorker), jobs=2)
    run_item_stage(spec(tmp_path / "one", make_items(12)))
    two, one = stored(tmp_path / "two"), stored(tmp_path / "one")
    assert sorted(two) == sorted(one) and all(np.array_equal(two[k], one[k]) for k in one)


def test_outputs_honour_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        run_item_stage(spec(tmp_path / "o", make_items(5)), jobs=2)
    finally:
        os.umask(previous)
    files = [p for p in (tmp_path / "o").iterdir() if p.is_file()]
    assert {p.suffix for p in files} >= {".h5", ".json", ".jsonl", ".yaml"}
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o644}, modes


def test_a_refused_training_command_leaves_nothing(cli, tmp_path):
    # The demo trainer begins its stage, then finds no item of the manifest in the store.
    from conftest import write_manifest

    from avtool.core.store import StoreWriter, store_attrs

    writer = StoreWriter(tmp_path / "feats", "00000-of-00001", store_attrs("logmel", {}))
    writer.add("other", np.zeros((4, 4), np.float32))
    writer.finalize()
    manifest = write_manifest(tmp_path / "m.jsonl", [{"id": "a", "path": "a.wav", "gender": "f"}])
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "demo", "--features", tmp_path / "feats", "--manifest", manifest, "--out", out
    )
    assert code == 2 and "no item of" in err
    assert not out.exists()


def test_a_compressing_worker_stores_the_same_values_smaller(tmp_path):
    from dataclasses import dataclass

    from items_helpers import HashWorker

    @dataclass
    class Labels(HashWorker):
        store_compression = "gzip"

        def __call__(self, item):
            return np.repeat(np.arange(4, dtype=np.uint8), 4096).reshape(64, 256)

    @dataclass
    class Plain(Labels):
        store_compression = None

    run_item_stage(spec(tmp_path / "gz", make_items(8), worker=Labels))
    run_item_stage(spec(tmp_path / "plain", make_items(8), worker=Plain))
    gz, plain = stored(tmp_path / "gz"), stored(tmp_path / "plain")
    assert all(np.array_equal(gz[k], plain[k]) for k in plain)
    size = {d: sum(p.stat().st_size for p in (tmp_path / d).glob("*.h5")) for d in ("gz", "plain")}
    assert size["gz"] * 4 < size["plain"]
