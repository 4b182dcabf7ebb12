"""The compiled hot path (ledger.native): used when it matches its sources, never when stale."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger import native


def _module_file(module: str, **env: str) -> str:
    """Where ``module`` is loaded from in a fresh interpreter with ``env`` added."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return result.stdout.strip()


def test_the_suite_runs_the_compiled_hot_path() -> None:
    """make install builds them and make test runs on them: what `make run` runs is tested."""
    assert native.active(), f"{native.status()}: run make install"
    for module in native.MODULES:
        loaded = Path(importlib.import_module(module).__file__ or "")
        assert loaded.is_relative_to(native.BUILD_DIR) and loaded.suffix == ".so", loaded


def test_ledger_native_0_runs_the_sources() -> None:
    assert _module_file("ledger.codec.transfer", LEDGER_NATIVE="0") == str(
        native.source_path("ledger.codec.transfer")
    )


@pytest.fixture
def manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "manifest.json"
    monkeypatch.setattr(native, "MANIFEST", path)
    path.write_text(json.dumps(native.expected_manifest()))
    return path


def test_a_current_manifest_is_used(manifest: Path) -> None:
    assert native._manifest_problem() is None


def test_an_edited_source_is_not_shadowed_by_its_old_build(manifest: Path) -> None:
    stale = native.expected_manifest()
    sources = dict(native.source_hashes())
    sources["ledger.codec.transfer"] = "0" * 64
    manifest.write_text(json.dumps({**stale, "sources": sources}))
    assert (
        native._manifest_problem() == "sources changed since the build (make install rebuilds them)"
    )


def test_a_build_for_another_interpreter_is_not_used(manifest: Path) -> None:
    manifest.write_text(json.dumps({**native.expected_manifest(), "build_tag": "cpython-39-x"}))
    assert "built for cpython-39-x" in (native._manifest_problem() or "")


@pytest.mark.parametrize("text", ["[]", "{not json", ""])
def test_a_damaged_manifest_means_the_sources(manifest: Path, text: str) -> None:
    manifest.write_text(text)
    assert (native._manifest_problem() or "").startswith("unreadable manifest")


def test_no_build_means_the_sources(manifest: Path) -> None:
    manifest.unlink()
    assert native._manifest_problem() == "not built (make install builds them)"


def test_an_unused_build_leaves_the_package_path_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_problem", "not built (make install builds them)")
    assert native.package_path("ledger.codec", ["/src/ledger/codec"]) == ["/src/ledger/codec"]
    assert native.status() == "source: not built (make install builds them)"
