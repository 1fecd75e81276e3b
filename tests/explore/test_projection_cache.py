"""numba's disk cache for UMAP: where it lives, that it is used, and that the map stays seeded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from insarexplore.explore.projection import numba_cache_dir

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    return {**env, **extra}


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert numba_cache_dir() == tmp_path / "home" / ".cache" / "insarexplore" / "numba"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert numba_cache_dir() == tmp_path / "xdg" / "insarexplore" / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_cache_dir() == tmp_path / "mine"


_IMPORT_AND_CALL = """
import json, os, numpy as np
from insarexplore.explore.projection import import_umap
umap = import_umap()
from numba.core import config
from umap.layouts import clip  # declared without cache=True by umap
clip(np.float32(5.0))
print(json.dumps({"env": os.environ["NUMBA_CACHE_DIR"], "config": config.CACHE_DIR}))
"""


def test_import_umap_creates_and_uses_the_cache_folder(tmp_path):
    """In a new process: the folder is created, numba is pointed at it, and a umap function
    that umap itself does not cache is written there when compiled."""
    out = json.loads(_python(_IMPORT_AND_CALL, _env(XDG_CACHE_HOME=str(tmp_path))))
    folder = tmp_path / "insarexplore" / "numba"
    assert folder.is_dir()
    assert out == {"env": str(folder), "config": str(folder)}
    names = {p.name for p in folder.rglob("*.nbi")}
    assert any(n.startswith("layouts.clip-") for n in names), sorted(names)
    assert any(p.name.startswith("layouts.clip-") for p in folder.rglob("*.nbc"))

    given = tmp_path / "given"  # NUMBA_CACHE_DIR wins over the default
    _python(_IMPORT_AND_CALL, _env(NUMBA_CACHE_DIR=str(given), XDG_CACHE_HOME=str(tmp_path)))
    assert any(p.name.startswith("layouts.clip-") for p in given.rglob("*.nbi"))


_FUNCTION_ARGUMENT = """
import sys
sys.path.insert(0, sys.argv[1])
from insarexplore.explore.projection import _cache_class
import jitted
for f in (jitted.plus_one, jitted.apply):
    f._cache = _cache_class()(f.py_func)
print(jitted.apply(jitted.plus_one, 1.0), jitted.plus_one(2.0))
"""

_JITTED = """
import numba

@numba.njit
def plus_one(x):
    return x + 1.0

@numba.njit
def apply(f, x):
    return f(x)
"""


def test_functions_taking_a_function_are_not_cached(tmp_path):
    """A signature with a jitted function as argument is keyed on that function's identity,
    new in every process: it is neither written nor looked up (the cache would grow each run)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "jitted.py").write_text(_JITTED)
    env = _env(NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    for _ in range(2):
        assert _python(_FUNCTION_ARGUMENT, env, str(tmp_path / "src")).split() == ["2.0", "3.0"]
    data = sorted(p.name for p in (tmp_path / "cache").rglob("*.nbc"))
    assert [n.split("-")[0] for n in data] == ["jitted.plus_one"], data  # one entry, reused


_SEEDED_FIT = """
import sys, numpy as np
from sklearn.datasets import make_blobs
from insarexplore.explore.projection import Projector
X, _ = make_blobs(n_samples=300, n_features=8, centers=3, random_state=1)
np.save(sys.argv[1], Projector("umap", n_neighbors=10).fit_transform(X.astype(np.float32)))
"""


@pytest.mark.slow  # two new processes, the first compiles UMAP (~40 s on 2 cores)
def test_seeded_umap_identical_whether_compiled_or_loaded_from_cache(tmp_path):
    env = _env(NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    _python(_SEEDED_FIT, env, str(tmp_path / "compiled.npy"))
    n_index = len(list((tmp_path / "cache").rglob("*.nbi")))
    assert n_index > 0
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.nbc")}
    _python(_SEEDED_FIT, env, str(tmp_path / "loaded.npy"))
    # the second process found everything in the cache: nothing new, nothing rewritten
    assert len(list((tmp_path / "cache").rglob("*.nbi"))) == n_index
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.nbc")} == stamps
    compiled, loaded = np.load(tmp_path / "compiled.npy"), np.load(tmp_path / "loaded.npy")
    assert compiled.shape == (300, 2) and np.isfinite(compiled).all()
    np.testing.assert_array_equal(compiled, loaded)


@pytest.mark.slow
def test_seeded_umap_repeats_in_process(umap_fit):
    from insarexplore.explore.projection import Projector

    proj, X, _, xy = umap_fit
    again = Projector("umap", n_neighbors=10, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(again, xy)
