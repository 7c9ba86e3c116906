"""`avtool models`: fetch through fake publishers on 127.0.0.1, checks, cache, list, path."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_http import FakeServer, Reply

from avtool.core.errors import InputError
from avtool.models import registry
from avtool.models.registry import ModelEntry, WeightFile

WEIGHTS = bytes(range(256)) * 64
CONFIG = b'{"layers": 2}'


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The models root that $AVTOOL_CACHE gives, in a temporary folder."""
    monkeypatch.setenv("AVTOOL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture
def fake_net(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> ModelEntry:
    """A registered model with a full-sha256 file and a hash-prefix-named one, served by `server`.

    Its base URL does not resolve: only AVTOOL_FAKEHUB_BASE_URL can route requests to `server`.
    """
    prefix = hashlib.sha256(WEIGHTS).hexdigest()[:8]
    entry = ModelEntry(
        name="fake-net",
        used_by="test",
        source="a fake publisher",
        licence="none",
        files=(
            WeightFile(
                "config.json",
                "fakehub",
                "https://fakehub.invalid",
                "repo/config.json",
                sha256=hashlib.sha256(CONFIG).hexdigest(),
            ),
            WeightFile(
                f"net-{prefix}.pth",
                "fakehub",
                "https://fakehub.invalid",
                f"models/net-{prefix}.pth",
                sha256_prefix=prefix,
            ),
        ),
    )
    monkeypatch.setitem(registry.REGISTRY, entry.name, entry)
    monkeypatch.setenv("AVTOOL_FAKEHUB_BASE_URL", server.url)
    server.route("/repo/config.json", Reply(200, CONFIG))
    server.route(f"/models/net-{prefix}.pth", Reply(200, WEIGHTS))
    return entry


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_checks_caches_and_prints_the_folder_last(cli, server, cache, fake_net):
    weights = fake_net.files[1]
    code, out, err = cli("models", "fetch", "fake-net")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1] == str(cache / "fake-net")
    assert "config.json: downloaded (sha256)" in lines
    assert f"{weights.name}: downloaded (sha256 prefix {weights.sha256_prefix}" in out
    assert (cache / "fake-net" / "config.json").read_bytes() == CONFIG
    assert (cache / "fake-net" / weights.name).read_bytes() == WEIGHTS
    assert leftovers(cache / "fake-net") == sorted(["config.json", weights.name])
    assert server.hits("/repo/config.json") == 1

    # Files already there with the right digest cost no request.
    code, out, _ = cli("models", "fetch", "fake-net")
    assert code == 0 and out.count("already cached") == 2
    assert len(server.seen) == 2

    code, out, _ = cli("models", "fetch", "fake-net", "--force")
    assert code == 0 and "already cached" not in out
    assert len(server.seen) == 4


def test_cache_option_overrides_the_environment(cli, server, cache, fake_net, tmp_path):
    other = tmp_path / "elsewhere"
    code, out, _ = cli("models", "fetch", "fake-net", "--cache", other)
    assert code == 0 and out.splitlines()[-1] == str(other / "fake-net")
    assert not cache.exists()
    code, out, _ = cli("models", "path", "fake-net", "--cache", other)
    assert code == 0 and out.strip() == str(other / "fake-net")


@pytest.mark.parametrize("corrupt", [0, 1], ids=["sha256", "sha256-prefix"])
def test_a_corrupted_body_leaves_nothing_under_the_final_name(
    cli, server, cache, fake_net, corrupt
):
    bad = fake_net.files[corrupt]
    server.route(f"/{bad.path}", Reply(200, b"tampered"))
    code, _, err = cli("models", "fetch", "fake-net")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1  # progress lines may precede the one error line
    assert "was not written" in errors[0] and "AVTOOL_FAKEHUB_BASE_URL" in errors[0]
    assert bad.name not in leftovers(cache / "fake-net")
    assert not any(name.endswith(".tmp") for name in leftovers(cache / "fake-net"))
    code, _, err = cli("models", "path", "fake-net")
    assert code == 2 and "avtool models fetch fake-net" in err


def test_unknown_name_lists_the_known_ones(cli, cache):
    for command in ("fetch", "path"):
        code, _, err = cli("models", command, "wav2vec3")
        assert code == 2 and err.strip().count("\n") == 0
        assert "unknown model 'wav2vec3'" in err
        assert "resemblyzer, vgg16, vggish, wav2vec2-base" in err


def test_path_before_and_after_fetch(cli, server, cache, fake_net):
    code, out, err = cli("models", "path", "fake-net")
    assert code == 2 and out == "" and err.strip().count("\n") == 0
    assert "run `avtool models fetch fake-net` first" in err
    assert cli("models", "fetch", "fake-net")[0] == 0
    code, out, _ = cli("models", "path", "fake-net")
    assert code == 0 and out == f"{cache / 'fake-net'}\n"


def test_list_shows_cached_state(cli, server, cache, fake_net):
    def cached_cell() -> str:
        code, out, _ = cli("models", "list")
        assert code == 0
        for name in ("wav2vec2-base", "vgg16", "vggish", "resemblyzer"):
            assert name in out
        row = next(line for line in out.splitlines() if "fake-net" in line)
        # Columns: name, used by, files, cached, verified, source.
        return row.split("│")[4].strip()

    assert cached_cell() == "no"
    cli("models", "fetch", "fake-net")
    assert cached_cell().startswith("yes")


@pytest.mark.parametrize(
    ("name", "service", "path"),
    [
        ("vgg16", "pytorch", "/models/vgg16-397923af.pth"),
        ("vggish", "github", "/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"),
    ],
)
def test_publisher_base_urls_come_from_the_environment(
    cli, server, cache, monkeypatch, name, service, path
):
    # No route: the fake server answers 404, which the client does not retry.
    monkeypatch.setenv(f"AVTOOL_{service.upper()}_BASE_URL", server.url)
    code, _, err = cli("models", "fetch", name)
    assert [seen.path for seen in server.seen] == [path]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "HTTP 404" in errors[0]
    assert leftovers(cache / name) == []


def test_shipped_model_needs_no_download(cli, cache):
    # Located, not imported: importing resemblyzer would load torch and librosa for nothing.
    if importlib.util.find_spec("resemblyzer") is None:
        pytest.skip("resemblyzer is not installed")
    code, out, _ = cli("models", "fetch", "resemblyzer")
    assert code == 0 and "shipped with the resemblyzer wheel" in out
    folder = Path(out.splitlines()[-1])
    assert (folder / "pretrained.pt").is_file()
    assert cli("models", "path", "resemblyzer")[1].strip() == str(folder)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> dict[str, bytes]:
    """The files of a tiny random wav2vec2, as the hub names them."""
    import io

    import torch
    from transformers import Wav2Vec2Model

    from avtool.features.wav2vec2 import tiny_random_config

    torch.manual_seed(0)
    model = Wav2Vec2Model(tiny_random_config())
    weights = io.BytesIO()
    torch.save(model.state_dict(), weights)
    return {
        "config.json": model.config.to_json_string().encode(),
        "preprocessor_config.json": b'{"do_normalize": true, "sampling_rate": 16000}',
        "pytorch_model.bin": weights.getvalue(),
    }


def test_wav2vec2_model_names_resolve_to_the_fetched_folder(
    cli, server, cache, monkeypatch, tiny_checkpoint, tmp_path
):
    from avtool.features.wav2vec2 import Wav2Vec2Params, load_model

    for name, body in tiny_checkpoint.items():
        server.route(f"/facebook/wav2vec2-base/resolve/main/{name}", Reply(200, body))
    monkeypatch.setenv("AVTOOL_HUGGINGFACE_BASE_URL", server.url)
    code, out, err = cli("models", "fetch", "wav2vec2-base")
    assert code == 0, err
    # The hub publishes no digest to check against, and the output says so.
    assert out.count("unverified") == 3
    assert out.splitlines()[-1] == str(cache / "wav2vec2-base")
    code, out, _ = cli("models", "fetch", "wav2vec2-base")
    assert out.count("already cached") == 3 and len(server.seen) == 3

    for name in ("wav2vec2-base", "facebook/wav2vec2-base"):
        model, random = load_model(Wav2Vec2Params(model=name))
        assert model.config.hidden_size == 32 and random is False
    # A local folder of the same name still wins over the cache.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wav2vec2-base").mkdir()
    with pytest.raises(InputError, match="no local wav2vec2 model"):
        load_model(Wav2Vec2Params(model="wav2vec2-base"))
    assert load_model(Wav2Vec2Params(model="random:tiny", allow_random_weights=True))[1]
