"""avtool.core.native: build once per source and CPU, cache, fall back with a reason."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest

from avtool.core import native

SOURCE = 'extern "C" int answer(void) { return 42; }\n'


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("AVTOOL_CACHE", str(tmp_path / "cache"))
    native.load_library.cache_clear()
    yield tmp_path
    native.load_library.cache_clear()


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler on PATH")
def test_builds_once_and_reuses_the_cached_library(fresh, monkeypatch):
    source = fresh / "answer.cpp"
    source.write_text(SOURCE)
    assert native.load_library(source).answer() == 42
    built = list((fresh / "cache" / "native").glob("answer-*.so"))
    assert len(built) == 1
    native.load_library.cache_clear()

    def no_compiler(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(subprocess, "run", no_compiler)
    assert native.load_library(source).answer() == 42
    source.write_text(SOURCE.replace("42", "43"))  # a changed source is a new library
    native.load_library.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("AVTOOL_CACHE", str(fresh / "cache"))
    assert native.load_library(source).answer() == 43


def test_without_a_compiler_the_caller_is_told_and_gets_none(fresh, monkeypatch, caplog):
    source = fresh / "answer.cpp"
    source.write_text(SOURCE)
    monkeypatch.setenv("CXX", "no-such-compiler")
    with caplog.at_level(logging.WARNING):
        assert native.load_library(source) is None
    assert "no C++ compiler on PATH: answer.cpp runs on torch's slower path" in caplog.text


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler on PATH")
def test_a_failed_build_is_reported_and_leaves_nothing(fresh, caplog):
    source = fresh / "broken.cpp"
    source.write_text("this is not C++\n")
    with caplog.at_level(logging.WARNING):
        assert native.load_library(source) is None
    assert "could not build broken.cpp (" in caplog.text
    assert not list((fresh / "cache" / "native").glob("*.so"))


def test_switched_off_by_the_environment(fresh, monkeypatch):
    source = fresh / "answer.cpp"
    source.write_text(SOURCE)
    monkeypatch.setenv("AVTOOL_NATIVE", "0")
    assert native.load_library(source) is None


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler on PATH")
def test_an_unwritable_cache_folder_is_reported(fresh, monkeypatch, caplog):
    source = fresh / "answer.cpp"
    source.write_text(SOURCE)
    (fresh / "file").write_text("")
    monkeypatch.setenv("AVTOOL_CACHE", str(fresh / "file" / "cache"))  # under a file
    with caplog.at_level(logging.WARNING):
        assert native.load_library(source) is None
    assert "could not build answer.cpp" in caplog.text
