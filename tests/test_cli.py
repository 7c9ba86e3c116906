import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "cv2", "librosa", "numpy", "h5py", "scipy")


def test_help_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from avtool.cli.main import main\n"
        "for args in (['--help'], ['features', '--help'], ['features', 'logmel', '--help']):\n"
        "    assert main(args) == 0\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_every_group_is_registered(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for group in (
        "prepare",
        "download",
        "synth",
        "features",
        "train",
        "quantize",
        "evaluate",
        "run",
        "demo",
        "status",
        "models",
        "report",
    ):
        assert group in out


def test_input_error_is_one_line_exit_2(cli, tmp_path):
    code, _, err = cli(
        "features", "logmel", "--manifest", tmp_path / "missing.jsonl", "--out", tmp_path / "o"
    )
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "missing.jsonl: manifest not found" in err


def test_malformed_manifest_line_is_named(cli, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "path": "a.wav"}) + "\n{oops\n")
    code, _, err = cli("features", "logmel", "--manifest", manifest, "--out", tmp_path / "o")
    assert code == 2 and "m.jsonl:2: not JSON" in err


def test_debug_shows_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "avtool.cli.main",
            "--debug",
            "features",
            "check",
            str(tmp_path / "nope"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr
