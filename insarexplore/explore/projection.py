"""2-D maps of the embeddings (UMAP or PCA), fitted once and cached in the workspace.

UMAP costs tens of seconds per 100,000 points (plus ~36 s of numba compilation on a machine's
first fit, cached on disk after it: see below), so a dashboard must never refit on start: :func:`project` stores the coordinates
under ``artifacts/projection/<key>``, keyed by method, parameters and model version, and checks
the vectors it was fitted on by hash. Samples embedded later are placed into the stored map
instead of refitting, which also keeps the map stable.

Nothing executable is stored (a fitted reducer would have to be pickled, and a workspace is
something people share and download): only arrays and parameters. A PCA map stores its mean
and components, so new samples are placed exactly as ``transform`` would place them. A UMAP
map places each new sample at the weighted mean of the positions of its ``n_neighbors``
nearest fitted samples (in the embedding space, with the map's metric) - the initial
placement of UMAP's own ``transform``, without its few epochs of refinement. ``--refit``
(``refit=True``) fits the map again on every sample.

Compilation is cached on disk. umap-learn declares few of its numba functions ``cache=True``
(pynndescent most of its), so every new process used to compile the layout and the nearest
neighbour descent again (~36 s on 2 cores, the larger part of a 10,000-sample projection).
:func:`import_umap` points numba at a user cache folder (:func:`numba_cache_dir`:
``$NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/insarexplore/numba`` or
``~/.cache/insarexplore/numba``) and switches on caching for the jitted functions of umap and
pynndescent before their first call; a later process loads the machine code instead of
compiling it. Signatures that take a function (pynndescent passes its distance function to the
nearest neighbour descent) are keyed on that function's identity, new in every process, so they
are neither cached nor looked up and still compile in each process (a few seconds). The fit
itself is unchanged: a seeded map is the same, bit for bit, with or without the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "Projector",
    "project",
    "embedding_hash",
    "place_by_neighbours",
    "numba_cache_dir",
    "import_umap",
]

METHODS = ("umap", "pca")
_JIT_PACKAGES = ("umap", "pynndescent")


def numba_cache_dir() -> Path:
    """Folder of numba's on-disk cache for UMAP: ``$NUMBA_CACHE_DIR`` when set, else
    ``insarexplore/numba`` under ``$XDG_CACHE_HOME`` (default ``~/.cache``)."""
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "insarexplore" / "numba"


def _holds_a_function(t: Any) -> bool:
    from numba.core import types

    if isinstance(t, (types.Dispatcher, types.FunctionType)):
        return True
    return isinstance(t, types.BaseTuple) and any(_holds_a_function(e) for e in t.types)


_CACHE_CLASS: type | None = None


def _cache_class() -> type:
    """numba's per-function disk cache, skipping signatures that take a function (pynndescent
    passes its distance function in). Such a signature is keyed on the identity of the function
    passed, new in every process: it would add an entry on every run and never load one."""
    global _CACHE_CLASS
    if _CACHE_CLASS is None:
        from numba.core.caching import FunctionCache

        class StaticArgumentCache(FunctionCache):
            def load_overload(self, sig: Any, target_context: Any) -> Any:
                if any(_holds_a_function(t) for t in getattr(sig, "args", sig)):
                    return None
                return super().load_overload(sig, target_context)

            def save_overload(self, sig: Any, data: Any) -> None:
                if not any(_holds_a_function(t) for t in getattr(sig, "args", sig)):
                    super().save_overload(sig, data)

        _CACHE_CLASS = StaticArgumentCache
    return _CACHE_CLASS


def _enable_jit_caching() -> list[str]:
    """Give every jitted function of umap and pynndescent (imported modules) the disk cache of
    :func:`_cache_class` in numba's current cache folder; the names of the functions."""
    from numba.core.registry import CPUDispatcher

    cls = _cache_class()
    switched = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in _JIT_PACKAGES:
            continue
        for attr, obj in list(vars(module).items()):
            if isinstance(obj, CPUDispatcher) and not isinstance(obj._cache, cls):
                obj._cache = cls(obj.py_func)
                switched.append(f"{name}.{attr}")
    return switched


def import_umap() -> Any:
    """``umap``, with numba's machine code cached in :func:`numba_cache_dir` (created) across
    processes. The folder is set before umap (and pynndescent) are imported, as numba picks a
    function's cache location when the function is declared."""
    folder = numba_cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # no writable cache: compile in this process, as before
        msg = f"numba cache folder {folder} not usable ({exc}); UMAP compiles anew"
        warnings.warn(msg, stacklevel=2)
        import umap

        return umap
    os.environ["NUMBA_CACHE_DIR"] = str(folder)  # numba re-reads its config on each compile
    if "numba" in sys.modules:
        from numba.core import config

        config.CACHE_DIR = str(folder)
    import umap

    _enable_jit_caching()
    return umap


class Projector(TransformerMixin, BaseEstimator):
    """UMAP or PCA to ``n_components`` dimensions, seeded (scikit-learn transformer).

    ``max_fit`` caps the rows UMAP is fitted on (a seeded subsample); the others are placed
    with ``transform``. It trades a little fidelity for a bounded fit time on huge archives.
    """

    def __init__(
        self,
        method: str = "umap",
        n_components: int = 2,
        *,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "euclidean",
        max_fit: int | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.method = method
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.max_fit = max_fit
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> np.ndarray:
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {METHODS}, got {self.method!r}")
        X = validate_data(self, X, dtype=np.float32, ensure_min_samples=3)
        n = X.shape[0]
        if self.n_components >= n or self.n_components < 1:
            raise ValueError(
                f"n_components: {self.n_components} needs more than {self.n_components} samples "
                f"(got {n}) and must be at least 1"
            )
        fit_rows = np.arange(n)
        if self.max_fit is not None and n > self.max_fit:
            rng = np.random.default_rng(self.random_state)
            fit_rows = np.sort(rng.choice(n, size=int(self.max_fit), replace=False))
        if self.method == "pca":
            from sklearn.decomposition import PCA

            self.reducer_ = PCA(self.n_components, random_state=self.random_state)
            self.reducer_.fit(X[fit_rows])
            return self.reducer_.transform(X).astype(np.float32)
        umap = import_umap()  # heavy (numba): imported only when UMAP is asked for

        self.reducer_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=max(2, min(self.n_neighbors, len(fit_rows) - 1)),
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            n_jobs=1 if self.random_state is not None else -1,
        )
        self.reducer_.fit(X[fit_rows])
        out = np.empty((n, self.n_components), dtype=np.float32)
        out[fit_rows] = self.reducer_.embedding_
        rest = np.setdiff1d(np.arange(n), fit_rows)
        if rest.size:
            out[rest] = self.reducer_.transform(X[rest])
        return out

    def fit(self, X: Any, y: Any = None) -> Projector:
        self._fit(X)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Coordinates of the training rows as fitted (UMAP's own layout, not re-transformed)."""
        return self._fit(X)

    def transform(self, X: Any) -> np.ndarray:
        """Place new rows into the fitted map without refitting."""
        check_is_fitted(self, "reducer_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return np.asarray(self.reducer_.transform(X), dtype=np.float32)


def embedding_hash(ids: np.ndarray, vectors: np.ndarray) -> str:
    """Content hash of embeddings (ids and values): the key that makes a cache trustworthy."""
    h = hashlib.blake2b(digest_size=12)
    h.update("\x1f".join(map(str, ids)).encode())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()


def place_by_neighbours(
    fit_vectors: np.ndarray,
    fit_xy: np.ndarray,
    new_vectors: np.ndarray,
    *,
    n_neighbors: int = 15,
    metric: str = "euclidean",
) -> np.ndarray:
    """Positions of ``new_vectors`` in a fitted map: the weighted mean of the positions of
    their nearest fitted samples (weights fall off with the distance beyond the nearest one,
    as in UMAP's fuzzy neighbourhoods)."""
    from sklearn.neighbors import NearestNeighbors

    k = max(1, min(int(n_neighbors), len(fit_vectors)))
    nn = NearestNeighbors(n_neighbors=k, metric=metric).fit(np.asarray(fit_vectors, np.float32))
    dist, idx = nn.kneighbors(np.asarray(new_vectors, np.float32))
    excess = dist - dist[:, :1]
    scale = excess.mean(axis=1, keepdims=True)
    w = np.exp(-excess / np.where(scale > 0, scale, 1.0))
    w /= w.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", w, np.asarray(fit_xy, np.float32)[idx]).astype(np.float32)


def _place(arrays: dict, meta: dict, fit_vectors, fit_xy, new_vectors) -> np.ndarray | None:
    """New samples placed into a cached map, None when the cache cannot place them."""
    if meta.get("method") == "pca":
        if "pca_mean" not in arrays or "pca_components" not in arrays:
            return None
        centred = np.asarray(new_vectors, np.float32) - arrays["pca_mean"]
        return (centred @ arrays["pca_components"].T).astype(np.float32)
    params = meta.get("params") or {}
    try:
        return place_by_neighbours(
            fit_vectors,
            fit_xy,
            new_vectors,
            n_neighbors=int(params.get("n_neighbors", 15)),
            metric=str(params.get("metric", "euclidean")),
        )
    except ValueError:  # a UMAP metric scikit-learn does not know: refit instead
        return None


def project(
    ws: Any,
    method: str = "umap",
    model_version: str | None = None,
    *,
    refit: bool = False,
    **kw: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, xy)`` of the workspace's embeddings, computed only when not cached.

    ``kw`` are :class:`Projector` parameters (``n_components``, ``n_neighbors``, ``min_dist``,
    ``metric``, ``max_fit``, ``random_state``). Samples embedded since the map was fitted are
    placed into it (see the module notes); a map whose training vectors changed is refitted.
    """
    ids, vectors, emb_meta = ws.load_embeddings(model_version)
    ids = np.asarray(ids).astype(str)
    version = model_version or emb_meta.get("model_version") or ws.current_model
    params = Projector(method, **kw).get_params()
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    key = f"{method}-{version}-{digest[:10]}"
    pos = {s: i for i, s in enumerate(ids)}

    if not refit and ws.has_artifact("projection", key):
        arrays, meta = ws.load_artifact("projection", key)
        fit_ids = arrays["fit_ids"].astype(str)
        if all(s in pos for s in fit_ids):
            fit_rows = np.fromiter((pos[s] for s in fit_ids), np.int64, len(fit_ids))
            if embedding_hash(fit_ids, np.asarray(vectors[fit_rows])) == meta["fit_hash"]:
                cached = dict(zip(arrays["ids"].astype(str), range(len(arrays["ids"]))))
                new = np.array([i for i, s in enumerate(ids) if s not in cached], dtype=np.int64)
                xy = np.empty((len(ids), arrays["xy"].shape[1]), dtype=np.float32)
                have = np.setdiff1d(np.arange(len(ids)), new)
                xy[have] = arrays["xy"][[cached[s] for s in ids[have]]]
                placed = None
                if new.size:
                    fit_xy = arrays["xy"][[cached[s] for s in fit_ids]]
                    placed = _place(
                        arrays, meta, vectors[fit_rows], fit_xy, np.asarray(vectors[new])
                    )
                if not new.size or placed is not None:
                    if new.size:
                        xy[new] = placed
                        meta = {**meta, "n_transformed": int(meta.get("n_transformed", 0))}
                        meta["n_transformed"] += int(new.size)
                    if new.size or len(have) != len(arrays["ids"]):
                        _save(ws, key, ids, xy, fit_ids, meta, _extra(arrays))
                    return ids, xy

    projector = Projector(method, **kw)
    xy = projector.fit_transform(np.asarray(vectors))
    meta = {
        "model_version": version,
        "method": method,
        "params": params,
        "fit_hash": embedding_hash(ids, np.asarray(vectors)),
        "n_fit": int(len(ids)),
        "n_transformed": 0,
        "embeddings_created": emb_meta.get("created"),
    }
    extra = {}
    if method == "pca":
        extra = {
            "pca_mean": projector.reducer_.mean_.astype(np.float32),
            "pca_components": projector.reducer_.components_.astype(np.float32),
        }
    _save(ws, key, ids, xy, ids, meta, extra)
    return ids, xy


def _extra(arrays: dict) -> dict:
    return {k: v for k, v in arrays.items() if k.startswith("pca_")}


def _save(
    ws: Any,
    key: str,
    ids: np.ndarray,
    xy: np.ndarray,
    fit_ids: np.ndarray,
    meta: dict,
    extra: dict | None = None,
) -> None:
    arrays = {"ids": ids.astype(str), "xy": xy, "fit_ids": np.asarray(fit_ids).astype(str)}
    ws.save_artifact("projection", key, {**arrays, **(extra or {})}, meta)
