"""Pipelines (`avtool run`), `avtool status` and the foundation's part of `avtool demo`."""

import json

import pytest

from avtool.core.errors import ConfigError, InputError
from avtool.recipes.pipeline import load_pipeline, run_pipeline, select_window

PIPELINE = """
name: toy
vars: {workspace: ws}
stages:
  - name: one
    run: synth speech --out {workspace}/one --count 2 --seed 1 --duration 1
  - name: two
    run: features logmel --manifest {workspace}/one/manifest.jsonl --out {workspace}/two --sr 16000 --n-fft 512 --hop 160 --n-mels 20
"""


@pytest.fixture
def pipeline(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(PIPELINE)
    return path


def test_load_substitutes_vars_and_finds_outputs(pipeline, tmp_path):
    name, stages = load_pipeline(pipeline, [f"workspace={tmp_path}/w"])
    assert name == "toy" and [s.name for s in stages] == ["one", "two"]
    assert stages[1].args[:3] == ["features", "logmel", "--manifest"]
    assert str(stages[1].out) == f"{tmp_path}/w/two"


def test_bad_pipelines_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - name: a\n    run: x --out {nowhere}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: stage 'a' uses \{nowhere\}"):
        load_pipeline(bad)
    bad.write_text("stages:\n  - run: x\n")
    with pytest.raises(ConfigError, match="stage 1 needs `name` and `run`"):
        load_pipeline(bad)


def test_window_selection(pipeline):
    _, stages = load_pipeline(pipeline)
    assert [s.name for s in select_window(stages, "two", None)] == ["two"]
    assert [s.name for s in select_window(stages, None, "one")] == ["one"]
    with pytest.raises(InputError, match="--from 'three': no such stage; stages are one, two"):
        select_window(stages, "three", None)


def test_run_dry_run_and_status(cli, pipeline, tmp_path):
    workspace = f"workspace={tmp_path}/w"
    code, out, _ = cli("run", pipeline, "--set", workspace, "--dry-run")
    assert code == 0 and "synth.speech: would run (never run)" in out
    assert "two: would run once earlier stages have made its inputs" in out
    assert not (tmp_path / "w").exists()

    code, out, _ = cli("status", pipeline)
    assert code == 0 and out.count("missing") == 2

    executed = []
    assert run_pipeline(
        pipeline, executed.append, start="two", sets=[workspace], announce=lambda _: None
    ) == ["two"]
    assert executed[0][:2] == ["features", "logmel"]

    code, _, _ = cli("run", pipeline, "--set", workspace)
    assert code == 0
    code, out, _ = cli("run", pipeline, "--set", workspace)
    assert "up to date" in out
    code, out, _ = cli("status", tmp_path / "w")
    assert code == 0 and out.count("│ done ") == 2 and "features.logmel" in out


@pytest.mark.slow
def test_demo_part_end_to_end(cli, tmp_path):
    code, out, err = cli("demo", "--only", "demo", "--out", tmp_path / "demo")
    assert code == 0, err
    results = json.loads(
        (tmp_path / "demo" / "runs" / "demo" / "evaluation" / "results.json").read_text()
    )
    assert results["held_out_items"] >= 8
    assert results["accuracy"] > results["chance"] + 0.2
    assert "demo finished" in out
    metrics = (tmp_path / "demo" / "runs" / "demo" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 12
    code, out, _ = cli("demo", "--only", "demo", "--out", tmp_path / "demo")
    assert out.count("up to date") == 4
    code, _, err = cli("demo", "--only", "nonesuch")
    assert code == 2 and "no such demo part" in err
