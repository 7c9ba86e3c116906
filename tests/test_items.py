import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from items_helpers import make_items, spec

from avtool.core.errors import InputError, StageFailed
from avtool.core.items import run_item_stage
from avtool.core.store import FeatureStore, check_store


def store_items(path: Path) -> dict[str, np.ndarray]:
    with FeatureStore(path) as store:
        return {key: store[key] for key in store}


def assert_same_items(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def test_whole_run_rerun_and_rejects(tmp_path):
    out = tmp_path / "store"
    result = run_item_stage(spec(out, make_items(20, bad=2)))
    assert result.state == "done"
    assert result.counts == {"items": 22, "done": 20, "rejected": 2}
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rejects} == {"bad0", "bad1"}
    assert "bad0.wav: unreadable on purpose" in rejects[0]["reason"]
    assert sorted(p.name for p in out.glob("*.h5")) == ["shard-00000-of-00001.h5"]
    assert len(store_items(out)) == 20
    again = run_item_stage(spec(out, make_items(20, bad=2)))
    assert again.state == "up-to-date"


def test_too_many_rejects_fail_without_stamp(tmp_path):
    out = tmp_path / "store"
    with pytest.raises(StageFailed, match=r"3 of 5 items rejected.*rejects.jsonl"):
        run_item_stage(spec(out, make_items(2, bad=3)))
    assert not (out / "stage.json").exists()
    assert len(store_items(out)) == 2  # finished items are kept


def test_shards_and_jobs_equal_single_run(tmp_path):
    items = make_items(30)
    run_item_stage(spec(tmp_path / "single", items))
    for index in range(3):
        run_item_stage(spec(tmp_path / "sharded", items), shard=f"{index}/3")
    run_item_stage(spec(tmp_path / "jobs", items), jobs=2)
    single = store_items(tmp_path / "single")
    assert_same_items(single, store_items(tmp_path / "sharded"))
    assert_same_items(single, store_items(tmp_path / "jobs"))
    assert len(list((tmp_path / "sharded").glob("shard-*-of-00003.h5"))) == 3
    # The whole stage counts as done once every shard's stamp is there.
    assert run_item_stage(spec(tmp_path / "sharded", items)).state == "up-to-date"


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_jobs_equal_single_run_under_either_start_method(tmp_path, monkeypatch, method):
    import multiprocessing

    import avtool.core.items as items_module

    monkeypatch.setattr(items_module, "_pool_context", lambda: multiprocessing.get_context(method))
    items = make_items(24, bad=1)
    run_item_stage(spec(tmp_path / "single", items))
    result = run_item_stage(spec(tmp_path / "jobs", items), jobs=3)
    assert result.counts == {"items": 25, "done": 24, "rejected": 1}
    assert_same_items(store_items(tmp_path / "single"), store_items(tmp_path / "jobs"))
    assert len(list((tmp_path / "jobs").glob("shard-*-of-00003.h5"))) == 3


def test_pool_forks_only_without_torch_and_threads():
    script = (
        "import threading, avtool.core.items as m\n"
        "print(m._pool_context().get_start_method())\n"
        "t = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True); t.start()\n"
        "print(m._pool_context().get_start_method())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["fork", "spawn"]
    with_torch = subprocess.run(
        [sys.executable, "-c", "import torch, avtool.core.items as m; "
         "print(m._pool_context().get_start_method())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert with_torch.stdout.strip() == "spawn"


def test_submitit_local_launcher(tmp_path, monkeypatch):
    # submitit's local jobs are fresh interpreters: they must find the test's worker module.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    items = make_items(12)
    result = run_item_stage(spec(tmp_path / "s", items), jobs=2, launcher="submitit-local")
    assert result.counts["done"] == 12
    assert len(list((tmp_path / "s").glob("stage-*-of-00002.json"))) == 2
    run_item_stage(spec(tmp_path / "ref", items))
    assert_same_items(store_items(tmp_path / "s"), store_items(tmp_path / "ref"))


def test_partial_run_with_other_sharding_is_refused(tmp_path):
    items = make_items(10)
    run_item_stage(spec(tmp_path / "s", items), shard="0/2")
    with pytest.raises(InputError, match="resume it with --jobs 2"):
        run_item_stage(spec(tmp_path / "s", items))


def test_dry_run_changes_nothing(tmp_path):
    result = run_item_stage(spec(tmp_path / "s", make_items(5)), dry_run=True)
    assert result.message == "test.hash: would run 5 items (never run)"
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_sigkill_at_random_instants_then_resume_is_bit_identical(tmp_path):
    count, delay = 60, 0.01
    reference = tmp_path / "reference"
    run_item_stage(spec(reference, make_items(count), delay))
    out = tmp_path / "killed"
    script = Path(__file__).with_name("items_helpers.py")
    rng = random.Random(7)
    kills = 0
    for _ in range(6):
        process = subprocess.Popen([sys.executable, str(script), str(out), str(count), str(delay)])
        time.sleep(rng.uniform(0.3, 1.2))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        if out.exists():  # every file under its final name opens after every kill
            FeatureStore(out)
    assert kills >= 2
    subprocess.run([sys.executable, str(script), str(out), str(count), str(delay)], check=True)
    assert_same_items(store_items(reference), store_items(out))
    final = "shard-00000-of-00001.h5"
    assert (out / final).read_bytes() == (reference / final).read_bytes()
    journal = [json.loads(line)["id"] for line in (out / "journal.jsonl").read_text().splitlines()]
    assert len(journal) == len(set(journal)) == count
    assert check_store(out)[0] == count


def test_writer_commits_slow_items_by_time(tmp_path):
    from avtool.core.store import StoreWriter, store_attrs

    writer = StoreWriter(tmp_path, "00000-of-00001", store_attrs("x", {}), commit_seconds=0.0)
    assert writer.add("a", np.zeros(3, np.float32)) == ["a"]
    assert writer.add("b", np.ones(3, np.float32)) == ["b"]
    assert len(list(tmp_path.glob("part-*.h5"))) == 2
    writer.finalize()
    assert store_items(tmp_path)["b"].tolist() == [1.0, 1.0, 1.0]
    assert [p.name for p in tmp_path.glob("*.h5")] == ["shard-00000-of-00001.h5"]
