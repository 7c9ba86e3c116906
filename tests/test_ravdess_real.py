"""RAVDESS format facts (../shared/data/real_samples/ravdess/FACTS.md): the real samples pass
`prepare ravdess` with default options, and the synthetic corpus has the same RIFF layout."""

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avtool.corpora.ravdess import PrepareConfig, prepare_ravdess

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_samples" / "ravdess"
REAL_ORDER = ["fmt ", "FLLR", "data", "LIST", "bext", "_PMX"]


def chunks(path: Path) -> list[tuple[str, int]]:
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack("<I", data[4:8])[0] + 8 == len(data)
    found, offset = [], 12
    while offset < len(data):
        tag, size = (
            data[offset : offset + 4].decode("ascii"),
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        found.append((tag, size))
        offset += 8 + size + (size & 1)
    assert offset == len(data)
    return found


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from avtool.synth.ravdess import synth_ravdess

    out = tmp_path_factory.mktemp("ravdess")
    synth_ravdess(out, actors=2, seed=0)
    return out


def test_synthetic_files_have_the_real_chunk_layout(synthetic):
    files = sorted(synthetic.glob("Actor_*/*.wav"))
    assert len(files) == 120
    layouts = [chunks(path) for path in files]
    assert all([tag for tag, _ in layout] == REAL_ORDER for layout in layouts)
    assert all(dict(layout)["fmt "] == 16 and dict(layout)["FLLR"] == 4044 for layout in layouts)
    assert {dict(layout)["_PMX"] % 2 for layout in layouts} == {0, 1}
    header = files[0].read_bytes()
    assert header.index(b"data") == 4088
    stereo = [p for p in files if soundfile.info(p).channels == 2]
    assert sorted(p.name for p in stereo) == [
        "03-01-03-01-02-01-02.wav",
        "03-01-06-01-01-02-02.wav",
    ]
    left_right = soundfile.read(stereo[0], dtype="int16")[0]
    assert np.array_equal(left_right[:, 0], left_right[:, 1])


def test_prepare_accepts_the_synthetic_corpus(synthetic, tmp_path):
    result = prepare_ravdess(synthetic, tmp_path / "prep", PrepareConfig())
    assert (result["files"], result["rejected"]) == (120, 0)


@pytest.mark.skipif(not REAL.is_dir(), reason=f"real RAVDESS samples not found at {REAL}")
def test_prepare_accepts_every_real_sample_with_default_options(tmp_path):
    result = prepare_ravdess(REAL, tmp_path / "prep", PrepareConfig())
    assert (result["files"], result["actors"], result["rejected"]) == (16, 14, 0)
    assert [tag for tag, _ in chunks(next(REAL.glob("Actor_11/*.wav")))] == REAL_ORDER
