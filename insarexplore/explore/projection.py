"""2-D maps of the embeddings (UMAP or PCA), fitted once and cached in the workspace.

UMAP costs tens of seconds per 100,000 points (plus numba compilation on a machine's first
fit, cached on disk after it: see below), so a dashboard must never refit on start:
:func:`project` stores the coordinates under ``artifacts/projection/<key>``, keyed by method,
parameters and model version, and checks the vectors it was fitted on by hash. Samples
embedded later are placed into the stored map instead of refitting, which also keeps the map
stable.

Nothing executable is stored (a fitted reducer would have to be pickled, and a workspace is
something people share and download): only arrays and parameters. A PCA map stores its mean
and components, so new samples are placed exactly as ``transform`` would place them. A UMAP
map places each new sample at the weighted mean of the positions of its ``n_neighbors``
nearest fitted samples (in the embedding space, with the map's metric) - the initial
placement of UMAP's own ``transform``, without its few epochs of refinement. ``--refit``
(``refit=True``) fits the map again on every sample.

Neighbours. UMAP starts from each row's ``n_neighbors`` nearest rows. For the metrics of
:data:`EXACT_KNN_METRICS` (euclidean, cosine, correlation) and at most
:data:`EXACT_KNN_MAX_ROWS` (30,000) fitted rows, :func:`exact_knn` finds them exactly by brute
force - blocks of rows against all rows, ranked with one float32 matrix product per block
(BLAS) and the best few re-ranked in float64, in bounded memory (140 MiB at its peak for
100,000 x 128 rows) - and hands them to umap-learn as ``precomputed_knn`` (each row first, at
distance 0, as in umap's own graph): umap's nearest-neighbour descent is then neither compiled
nor run. That descent takes its distance function as an argument, so its machine code is not
cached (below) and compiles again in every process: 14-18 s on 2 busy cores whatever the size,
while the descent itself takes 0.6 s for 10,000 x 128 rows and 3 s for 50,000. Brute force
took 1.1 s for 10,000 rows on one thread, 6.6 s for 30,000, 13 s for 40,000, 23 s for 50,000
and 78 s for 100,000 (with two BLAS threads on busy cores 13 s for 30,000, 22 s for 40,000),
hence the threshold. A seeded 10,000-sample map in a new process took 12 s, against 25 s with
umap's search (``benchmarks/bench_engine.py --projection``). Above the threshold, and for
other metrics, umap-learn searches as before (NN-descent; all distances below 4,096 rows) and
a seeded map is the one plain umap-learn makes. The fitted reducer's ``transform`` asks an
:class:`ExactKnnIndex` (exact neighbours among the fitted rows) where it would have asked
pynndescent's index. A map records how its neighbours were found (``knn`` in its metadata:
``"exact"`` or ``"umap"``; maps made before have none and were made by umap's search): a
cached map that a fit now would make the other way is refitted, not kept next to maps made
the new way; the others load as they are.

Compilation is cached on disk. umap-learn declares few of its numba functions ``cache=True``
(pynndescent most of its), so every new process used to compile the layout and the nearest
neighbour descent again (~36 s on 2 cores, the larger part of a 10,000-sample projection).
:func:`import_umap` points numba at a user cache folder (:func:`numba_cache_dir`:
``$NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/insarexplore/numba`` or
``~/.cache/insarexplore/numba``) and switches on caching for the jitted functions of umap and
pynndescent before their first call; a later process loads the machine code instead of
compiling it. Signatures that take a function (pynndescent passes its distance function to the
nearest neighbour descent) are keyed on that function's identity, new in every process, so they
are neither cached nor looked up and still compile in each process where the descent runs.
Caching does not change a fit: a seeded map is the same, bit for bit, with or without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from insarexplore._checks import check_name, check_unit, check_whole
from insarexplore.errors import WorkspaceError

log = logging.getLogger(__name__)

__all__ = [
    "Projector",
    "project",
    "embedding_hash",
    "place_by_neighbours",
    "exact_knn",
    "knn_method",
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


# -- exact nearest neighbours -------------------------------------------------------------------
EXACT_KNN_METRICS = {"euclidean": "euclidean", "l2": "euclidean", "cosine": "cosine",
                     "correlation": "correlation"}  # fmt: skip
"""Metrics whose neighbours :func:`exact_knn` finds (name as UMAP spells it -> the kind)."""
EXACT_KNN_MAX_ROWS = 30_000
"""Most rows a UMAP map is fitted on with :func:`exact_knn`; above, umap's own NN-descent."""
_BLOCK_BYTES = 64 << 20  # working memory of one block of query rows in exact_knn
_CANDIDATES = 8  # rows kept beyond k from the float32 pass, re-ranked in float64


def knn_method(metric: str, n_rows: int) -> str:
    """How a UMAP map of ``n_rows`` rows finds its neighbours: ``"exact"`` (:func:`exact_knn`,
    for the metrics of :data:`EXACT_KNN_METRICS` up to :data:`EXACT_KNN_MAX_ROWS` rows) or
    ``"umap"`` (umap-learn's own search: NN-descent, or all distances below 4,096 rows)."""
    if metric in EXACT_KNN_METRICS and n_rows <= EXACT_KNN_MAX_ROWS:
        return "exact"
    return "umap"


def _unit(X: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``X`` (float64) as the cosine or correlation metric sees them: centred on their
    own mean (correlation), scaled to unit length; zero rows stay zero, flagged."""
    X = X.astype(np.float64)
    if kind == "correlation":
        X -= X.mean(axis=1, keepdims=True)
    norm = np.sqrt((X * X).sum(axis=1))
    zero = norm == 0
    X /= np.where(zero, 1.0, norm)[:, None]
    return X, zero


def _pair_distances(
    Q: np.ndarray, R: np.ndarray, rows: np.ndarray, cols: np.ndarray, kind: str
) -> np.ndarray:
    """Distances (float64) between query rows ``Q[rows]`` and reference rows ``R[cols]``, as
    pynndescent defines them (cosine and correlation: 0 between two zero vectors, 1 between a
    zero vector and any other)."""
    if kind == "euclidean":
        diff = Q[rows].astype(np.float64) - R[cols].astype(np.float64)
        return np.sqrt((diff * diff).sum(axis=1))
    a, za = _unit(Q[rows], kind)
    b, zb = _unit(R[cols], kind)
    d = 1.0 - (a * b).sum(axis=1)
    d[za | zb] = 1.0
    d[za & zb] = 0.0
    return np.maximum(d, 0.0)


def _ranking_rows(X: np.ndarray, kind: str, centre: np.ndarray | None) -> np.ndarray:
    """float32 rows whose products rank neighbours, made a few thousand rows at a time (bounded
    float64 temporaries): rows less ``centre`` (euclidean: |r|^2 - 2 q.r ranks like the
    distance), or unit rows (cosine, correlation: -q.r) with a last column that is 1 for zero
    rows only (a zero row meets another at distance 0 and any other row at 1, as in umap)."""
    n, d = X.shape
    out = np.empty((n, d + (kind != "euclidean")), np.float32)
    for s in range(0, n, 8192):
        part = X[s : s + 8192]
        if kind == "euclidean":
            out[s : s + 8192] = part - centre
        else:
            unit, zero = _unit(part, kind)
            out[s : s + 8192, :d] = unit
            out[s : s + 8192, d] = zero
    return out


def exact_knn(
    data: Any,
    k: int,
    metric: str = "euclidean",
    queries: Any = None,
    *,
    block_bytes: int = _BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``data`` to each query row, by brute force: ``(indices, distances)``
    (int32, float32; ``(n_queries, k)``, nearest first, ties by index).

    Without ``queries`` the rows of ``data`` are their own queries and each row is its own
    first neighbour at distance 0 (umap's convention for a neighbour graph), followed by its
    ``k - 1`` nearest other rows. Candidates are ranked with one float32 matrix product per
    block of query rows (BLAS), the nearest ``k + 8`` kept and their distances recomputed in
    float64 from the input, so the neighbours are the exact ones up to ties. Blocks hold about
    ``block_bytes`` of working memory whatever the size.
    """
    kind = EXACT_KNN_METRICS.get(metric)
    if kind is None:
        raise ValueError(
            f"metric: exact neighbours for {sorted(EXACT_KNN_METRICS)}, got {metric!r}"
        )
    R = np.ascontiguousarray(data, dtype=np.float32)
    self_query = queries is None
    Q = R if self_query else np.ascontiguousarray(queries, dtype=np.float32)
    if R.ndim != 2 or Q.ndim != 2 or Q.shape[1] != R.shape[1]:
        raise ValueError(f"data {R.shape} and queries {Q.shape} must be 2-D with equal columns")
    n_ref, n_q = len(R), len(Q)
    own = int(self_query)  # the row itself, not searched for
    k = int(k)
    if not 1 <= k <= n_ref:
        raise ValueError(f"k: must be between 1 and {n_ref}, got {k}")
    take = k - own  # neighbours searched for per query
    out_i = np.empty((n_q, k), np.int32)
    out_d = np.empty((n_q, k), np.float32)
    if own:
        out_i[:, 0] = np.arange(n_q)
        out_d[:, 0] = 0.0
    if take == 0 or n_q == 0:
        return out_i, out_d

    centre = R.mean(axis=0, dtype=np.float64) if kind == "euclidean" else None
    Ra = _ranking_rows(R, kind, centre)
    Qa = Ra if own else _ranking_rows(Q, kind, centre)
    r_sq = np.einsum("ij,ij->i", Ra, Ra) if kind == "euclidean" else None
    m = min(n_ref - own, take + _CANDIDATES)  # candidates per query row
    per_row = 9 * n_ref + 24 * m * (R.shape[1] + 1)  # products, partition, mask, re-rank
    step = int(max(1, min(n_q, block_bytes // per_row)))
    for s in range(0, n_q, step):
        e = min(n_q, s + step)
        local = np.arange(e - s)
        D = Qa[s:e] @ Ra.T  # ranks like the distance: |r|^2 - 2 q.r, or -q.r
        if r_sq is not None:
            D *= -2.0
            D += r_sq
        else:
            np.negative(D, out=D)
        if own:
            D[local, s + local] = np.inf
        if m < n_ref - own:
            bound = np.partition(D, m - 1, axis=1)[:, m - 1]
            rows, cols = np.nonzero(D <= bound[:, None])  # m or more per row (ties)
        else:
            rows, cols = np.nonzero(D < np.inf)
        del D
        dist = _pair_distances(Q, R, s + rows, cols, kind)
        order = np.lexsort((cols, dist, rows))
        first = np.searchsorted(rows[order], local)
        pick = order[first[:, None] + np.arange(take)[None, :]]
        out_i[s:e, own:] = cols[pick]
        out_d[s:e, own:] = dist[pick]
    return out_i, out_d


class ExactKnnIndex:
    """Stands in for pynndescent's ``NNDescent`` in a UMAP fitted on :func:`exact_knn`
    neighbours: ``UMAP.transform`` asks it for the exact neighbours of new rows among the
    fitted ones (``query``). Holds the fitted rows and the metric, nothing else."""

    _angular_trees = False  # read by UMAP.transform (picks the search's epsilon, unused here)

    def __init__(self, data: np.ndarray, metric: str) -> None:
        self._raw_data = np.asarray(data, dtype=np.float32)
        self.metric = metric

    def query(self, query_data: Any, k: int = 10, epsilon: float = 0.1):
        return exact_knn(self._raw_data, k, self.metric, np.asarray(query_data, np.float32))


class Projector(TransformerMixin, BaseEstimator):
    """UMAP or PCA to ``n_components`` dimensions, seeded (scikit-learn transformer).

    ``max_fit`` caps the rows UMAP is fitted on (a seeded subsample); the others are placed
    with ``transform``. It trades a little fidelity for a bounded fit time on huge archives.
    After a UMAP fit ``knn_`` says how the neighbours were found (:func:`knn_method`).
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

    def _check_params(self) -> None:
        """Each parameter's type and range, named when wrong (before numpy, UMAP or sklearn
        meet it with an error of their own)."""
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {METHODS}, got {self.method!r}")

        check_whole("n_components", self.n_components, 1)
        check_whole("n_neighbors", self.n_neighbors, 1)  # UMAP uses at least 2
        if self.max_fit is not None:
            check_whole("max_fit", self.max_fit, 10)
        if self.random_state is not None:
            check_whole("random_state", self.random_state, 0, 2**32 - 1)
        check_unit("min_dist", self.min_dist)
        if not callable(self.metric):  # a name, or UMAP's numba-compiled distance
            check_name("metric", self.metric)

    def _fit(self, X: np.ndarray) -> np.ndarray:
        self._check_params()
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

        fit_X = X[fit_rows]
        n_neighbors = max(2, min(self.n_neighbors, len(fit_rows) - 1))
        self.knn_ = knn_method(self.metric, len(fit_rows))
        given = {}
        if self.knn_ == "exact":  # umap skips its neighbour search (and compiling it)
            indices, distances = exact_knn(fit_X, n_neighbors, self.metric)
            index = ExactKnnIndex(fit_X, self.metric)
            given["precomputed_knn"] = (indices, distances, index)
        self.reducer_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            n_jobs=1 if self.random_state is not None else -1,
            **given,
        )
        with warnings.catch_warnings():  # "not an NNDescent object": ExactKnnIndex answers
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
            self.reducer_.fit(fit_X)
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
    projector = Projector(method, **kw)
    projector._check_params()  # before any reading, and before a cache lookup by them
    ids, vectors, emb_meta = ws.load_embeddings(model_version)
    ids = np.asarray(ids).astype(str)
    version = model_version or emb_meta.get("model_version") or ws.current_model
    params = projector.get_params()
    digest = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    key = f"{method}-{version}-{digest[:10]}"
    pos = {s: i for i, s in enumerate(ids)}
    # the map is as current as the embeddings it shows (made from the data they record)
    made_from = {"data_fingerprint": emb_meta.get("data_fingerprint") or ws.data_fingerprint()}

    cached = None
    if not refit and ws.has_artifact("projection", key):
        try:
            cached = _cached(ws, key, ids, vectors, pos, made_from)
        except (WorkspaceError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("the stored map %s cannot be used (%s); fitting it again", key, exc)
    if cached is not None:
        return cached

    xy = projector.fit_transform(np.asarray(vectors))
    meta = {
        "model_version": version,
        "method": method,
        "params": params,
        "fit_hash": embedding_hash(ids, np.asarray(vectors)),
        "n_fit": int(len(ids)),
        "n_transformed": 0,
        "embeddings_created": emb_meta.get("created"),
        **made_from,
    }
    if method == "umap":
        meta["knn"] = projector.knn_
    extra = {}
    if method == "pca":
        extra = {
            "pca_mean": projector.reducer_.mean_.astype(np.float32),
            "pca_components": projector.reducer_.components_.astype(np.float32),
        }
    _save(ws, key, ids, xy, ids, meta, extra)
    return ids, xy


def _cached(ws: Any, key: str, ids: np.ndarray, vectors: Any, pos: dict, made_from: dict):
    """``(ids, xy)`` from the stored map ``key`` with new samples placed into it, or None when
    it must be fitted again (its training vectors changed, or it cannot place them)."""
    arrays, meta = ws.load_artifact("projection", key)
    fit_ids = arrays["fit_ids"].astype(str)
    if _same_fit(meta, len(fit_ids)) and all(s in pos for s in fit_ids):
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
                placed = _place(arrays, meta, vectors[fit_rows], fit_xy, np.asarray(vectors[new]))
            if not new.size or placed is not None:
                if new.size:
                    xy[new] = placed
                    meta = {**meta, "n_transformed": int(meta.get("n_transformed", 0))}
                    meta["n_transformed"] += int(new.size)
                moved = new.size or len(have) != len(arrays["ids"])
                if moved or meta.get("data_fingerprint") != made_from["data_fingerprint"]:
                    meta = {**meta, **made_from}
                    _save(ws, key, ids, xy, fit_ids, meta, _extra(arrays), cache=True)
                return ids, xy
    return None


def _same_fit(meta: dict, n_fit: int) -> bool:
    """Whether a fit now would find the neighbours of a cached map the way it was made: a UMAP
    map records it under ``knn`` (maps without it were made by umap's own search); one made
    otherwise is refitted, not reused next to maps fitted the new way."""
    if meta.get("method") != "umap":
        return True
    params = meta.get("params") or {}
    cap = params.get("max_fit")
    n_rows = n_fit if cap is None else min(n_fit, int(cap))
    return meta.get("knn", "umap") == knn_method(str(params.get("metric", "euclidean")), n_rows)


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
    *,
    cache: bool = False,
) -> None:
    """Store a map; ``cache``: one that a read-only workspace uses without keeping."""
    arrays = {"ids": ids.astype(str), "xy": xy, "fit_ids": np.asarray(fit_ids).astype(str)}
    save = ws.keep_artifact if cache else ws.save_artifact
    save("projection", key, {**arrays, **(extra or {})}, meta)
