"""The pretrained networks avtool systems use: where each comes from, how it is checked, where
it is cached.

A model's files live in `<root>/<name>/` under their publisher's file names, so the folder can
be passed to `--model` options as is. The root is `$AVTOOL_CACHE/models`, else
`~/.cache/avtool/models`. Downloads go through `HttpClient`, one service per publisher
("huggingface", "pytorch", "github"), so `AVTOOL_<SERVICE>_BASE_URL` can point each at a mirror
or at a fake server in tests.

Checks, per file, from the strongest the publisher gives:
- `sha256`: the full digest of the bytes.
- `sha256_prefix`: torchvision and torch.hub put the first hex digits of the file's sha256 in
  its name (`vgg16-397923af.pth`); that prefix is checked against the sha256 of the bytes.
- neither: nothing is published to check against (the Hugging Face hub gives no digest in the
  URL), and the fetch says the file is unverified. No digest is written here that was not
  read from the publisher.

This module knows the systems (who uses which network), so it lives beside them in `models/`,
not in the task-agnostic `core/`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from avtool.core.atomic import atomic_path
from avtool.core.errors import InputError, NetworkError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One file of a model: `name` in its folder, fetched from `path` under the service's URL."""

    name: str
    service: str
    base_url: str
    path: str
    sha256: str | None = None
    sha256_prefix: str | None = None

    @property
    def check(self) -> str:
        if self.sha256:
            return "sha256"
        if self.sha256_prefix:
            return f"sha256 prefix {self.sha256_prefix} (from the file name)"
        return "unverified: no digest published"


@dataclass(frozen=True)
class ModelEntry:
    """A pretrained network; `shipped` names the wheel that carries it instead of a download."""

    name: str
    used_by: str
    source: str
    licence: str
    files: tuple[WeightFile, ...] = ()
    aliases: tuple[str, ...] = ()
    shipped: str | None = None


_HF_WAV2VEC2 = "facebook/wav2vec2-base/resolve/main"

REGISTRY: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry(
            name="wav2vec2-base",
            used_by="ser",
            source="facebook/wav2vec2-base on the Hugging Face hub (Baevski et al. 2020)",
            licence="Apache-2.0 (model card)",
            files=tuple(
                WeightFile(name, "huggingface", "https://huggingface.co", f"{_HF_WAV2VEC2}/{name}")
                for name in ("config.json", "preprocessor_config.json", "pytorch_model.bin")
            ),
            aliases=("facebook/wav2vec2-base",),
        ),
        ModelEntry(
            name="vgg16",
            used_by="sed",
            source="torchvision's ImageNet VGG16 (Simonyan & Zisserman 2015)",
            licence="torchvision, BSD-3-Clause; see torchvision's docs for the weights' terms",
            files=(
                WeightFile(
                    "vgg16-397923af.pth",
                    "pytorch",
                    "https://download.pytorch.org",
                    "models/vgg16-397923af.pth",
                    sha256_prefix="397923af",
                ),
            ),
        ),
        ModelEntry(
            name="vggish",
            used_by="sed",
            source="torchvggish v0.1, a port of Google's AudioSet VGGish (Hershey et al. 2017)",
            licence="VGGish: Apache-2.0 (tensorflow/models); see harritaylor/torchvggish",
            files=(
                WeightFile(
                    "vggish-10086976.pth",
                    "github",
                    "https://github.com",
                    "harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
                    sha256_prefix="10086976",
                ),
            ),
        ),
        ModelEntry(
            name="resemblyzer",
            used_by="limuse",
            source="resemblyzer's GE2E speaker encoder (pretrained.pt)",
            licence="Apache-2.0 (resemblyzer)",
            shipped="resemblyzer",
        ),
    )
}


def _find(name: str) -> ModelEntry | None:
    return next((e for e in REGISTRY.values() if name == e.name or name in e.aliases), None)


def lookup(name: str) -> ModelEntry:
    """The entry called `name` or one of its aliases; else an InputError naming the known ones."""
    entry = _find(name)
    if entry is not None:
        return entry
    raise InputError(f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}")


def cache_root(cache: Path | None = None) -> Path:
    """The folder holding one folder per model: `cache`, `$AVTOOL_CACHE/models` or ~/.cache."""
    if cache is not None:
        return Path(cache)
    env = os.environ.get("AVTOOL_CACHE")
    return Path(env) / "models" if env else Path.home() / ".cache" / "avtool" / "models"


def shipped_folder(entry: ModelEntry) -> Path:
    """The installed package folder holding a shipped model, found without importing it."""
    # Importing resemblyzer would pull in torch and librosa just to print a path.
    spec = importlib.util.find_spec(entry.shipped or "")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"{entry.name}: ships with the {entry.shipped} wheel, which is not installed; "
            f"pip install {entry.shipped}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def model_folder(entry: ModelEntry, cache: Path | None = None) -> Path:
    """Where `entry`'s files are or would be: its cache folder, or a shipped package's folder."""
    if entry.shipped:
        return shipped_folder(entry)
    return cache_root(cache) / entry.name


def is_cached(entry: ModelEntry, cache: Path | None = None) -> bool:
    """Whether every file is in place (files appear only whole and checked: writes are atomic)."""
    if entry.shipped:
        return importlib.util.find_spec(entry.shipped) is not None
    folder = model_folder(entry, cache)
    return all((folder / f.name).is_file() for f in entry.files)


def cached_folder(name: str, cache: Path | None = None) -> Path | None:
    """The complete cache folder of the registered model `name`; None if unknown or not fetched."""
    entry = _find(name)
    if entry is None or entry.shipped or not is_cached(entry, cache):
        return None
    return model_folder(entry, cache)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _mismatch(file: WeightFile, digest: str) -> str | None:
    """What is wrong with bytes of sha256 `digest` for `file`; None when they pass its check."""
    if file.sha256 and digest != file.sha256.lower():
        return f"sha256 {digest}, expected {file.sha256.lower()}"
    if file.sha256_prefix and not digest.startswith(file.sha256_prefix.lower()):
        return f"sha256 {digest}, expected one starting {file.sha256_prefix.lower()}"
    return None


def fetch(
    entry: ModelEntry, cache: Path | None = None, force: bool = False, url: str | None = None
) -> Iterator[str]:
    """Download `entry`'s missing files into its folder, yielding one line per file.

    A present file that passes its check (or has none to pass) is kept without a request unless
    `force`. A download that fails its check raises NetworkError and leaves nothing under the
    file's name. `url` replaces the publisher's address of a one-file model (a mirror); the
    file is checked as from the publisher.
    """
    from avtool.core.http import HttpClient

    folder = model_folder(entry, cache)
    if entry.shipped:
        yield f"{entry.name}: shipped with the {entry.shipped} wheel; nothing to download"
        return
    mirror = url
    if mirror and len(entry.files) != 1:
        from avtool.core.http import base_url_env

        raise InputError(
            f"--url: {entry.name} has {len(entry.files)} files; point "
            f"{base_url_env(entry.files[0].service)} at a mirror instead"
        )
    clients: dict[str, HttpClient] = {}
    try:
        for file in entry.files:
            dest = folder / file.name
            if not force and dest.is_file() and not _mismatch(file, _sha256_of(dest)):
                yield f"{file.name}: already cached ({file.check})"
                continue
            client = clients.get(file.service)
            if client is None:
                client = clients[file.service] = HttpClient(file.service, file.base_url)
            url = client.url(mirror or file.path)
            log.info("downloading %s", url)
            # The client's own sha256 check cannot take a prefix, so the check happens here,
            # on the temporary file, before the rename makes it visible under its name.
            with atomic_path(dest) as tmp:
                client.download(url, tmp)
                problem = _mismatch(file, _sha256_of(tmp))
                if problem:
                    raise NetworkError(
                        f"{entry.name}: {url} gave {problem}; {dest} was not written; the file "
                        "changed upstream or was corrupted in transit: rerun, or check "
                        f"{client.base_url_env}"
                    )
            yield f"{file.name}: downloaded ({file.check})"
    finally:
        for client in clients.values():
            client.close()
