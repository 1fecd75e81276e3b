"""Embedding interferograms with a pretrained encoder.

* ``Embedder``: a scikit-learn transformer. ``fit(ds)`` loads and checks the model, and
  ``transform(ds)`` returns ``(n_samples, dim)`` float32 pooled encoder features, in batches,
  without gradients, on any device, with a progress bar. Inputs are xarray Datasets of the data
  model (lazy ones are read chunk by chunk) or ``(n, C, H, W)`` channel arrays. The next
  batches are read on a background thread while the model runs (into pinned memory on CUDA),
  and on CUDA the model runs in bf16 and channels_last with results copied back without a
  wait per batch.
* ``embed_workspace``: embeds a workspace's samples and stores them aligned by sample id; by
  default only samples without an embedding yet, so re-embedding after appending data only
  embeds what is new. Each block's vectors are appended to the stored ones (written once).
* ``embed_with_dask``: one dask task per storage chunk of a Zarr store, for archives beyond one
  machine (run on a ``dask.distributed`` cluster). Each worker uses its own GPU (worker name
  modulo the GPU count) and holds one model per device, built once even when its threads
  start tasks at the same time.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn

from insarexplore.errors import InSARDataError
from insarexplore.ssl.augment import resize_batch

log = logging.getLogger(__name__)

__all__ = ["Embedder", "embed_with_dask", "embed_workspace"]


def _device(device: Any) -> torch.device:
    from insarexplore.ssl.train import resolve_device

    return resolve_device(device)


def _plain_name(name: Any) -> bool:
    """A model version's name rather than a path (no folder separator in it)."""
    return isinstance(name, str) and bool(name) and "/" not in name and os.sep not in name


class Embedder(TransformerMixin, BaseEstimator):
    """Dataset in, ``(n_samples, dim)`` float32 embeddings out.

    ``model``: an encoder module, a path to ``encoder.pt`` or a model folder, a model version
    of ``workspace``, or None for the workspace's current model. With ``resize`` (default),
    inputs of another size than the encoder was trained at (``config["image_size"]``) are
    resized to it first (``size`` another side instead). With ``dihedral`` each image's
    features are the mean over its 8 rotations and reflections by 90 degrees (pretraining's
    views are drawn under these, so the encoder is nearly invariant to them and the mean only
    removes what is left): 8x the compute. ``dihedral`` None (default) takes the model's
    recorded choice (``config["embed_dihedral"]``; pretraining records True, older models
    none: one view), so every embedding of a model is made alike. A model saved with a physics
    head (``physics_head.pt`` beside the encoder) embeds with its features stretched along the
    head's directions by the gains recorded with it (``PhysicsHead.stretch``: deformation
    against none, and which source); ``gains`` = ``(gain, class_gain)`` others ((1, 1): the
    plain features). ``fit`` sets ``model_``, ``config_``, ``head_`` (the physics head with
    the gains used, or None for plain features), ``stretch_`` (those gains as
    ``[gain, class_gain]``; ``[1.0, 1.0]`` for plain features, as stored embeddings record
    them), ``device_`` and ``n_features_out_``.
    """

    def __init__(
        self,
        model: Any = None,
        workspace: Any = None,
        batch_size: int = 256,
        device: str | None = None,
        progress: bool = True,
        resize: bool = True,
        amp: bool = True,
        prefetch: int = 2,
        size: int | None = None,
        dihedral: bool | None = None,
        gains: tuple[float, float] | None = None,
    ) -> None:
        self.model = model
        self.workspace = workspace
        self.batch_size = batch_size
        self.device = device
        self.progress = progress
        self.resize = resize
        self.amp = amp
        self.prefetch = prefetch
        self.size = size
        self.dihedral = dihedral
        self.gains = gains

    def _where(self) -> Path | None:
        """The model's folder or weights file (None for a module). With a workspace, a name
        is one of its model versions, never a same-named path in the current folder."""
        if isinstance(self.model, nn.Module):
            return None
        name = self.model
        if self.workspace is not None and (name is None or _plain_name(name)):
            from insarexplore.errors import WorkspaceError
            from insarexplore.workspace import Workspace

            ws = (
                self.workspace
                if isinstance(self.workspace, Workspace)
                else Workspace.open(self.workspace)
            )
            version = ws.resolve_model(name)
            folder = ws.model_dir(version)
            if not (folder / "encoder.pt").is_file():
                known = ", ".join(ws.list_models()) or "none"
                raise WorkspaceError(
                    f"{ws.path}: no model {version!r} in {ws.models_dir} (its models: {known})"
                )
            return folder
        if name is not None and Path(str(name)).exists():
            return Path(str(name))
        if self.workspace is None:
            raise ValueError(
                "Embedder: give model= (an encoder, a saved encoder path) or workspace="
            )
        raise ValueError(f"model: {name!r} is neither a model of the workspace nor a path")

    def _folder(self) -> Path | None:
        """The model folder (where a physics head would be), None for a module."""
        path = self._where()
        if path is None:
            return None
        return path if path.is_dir() else path.parent

    def _head(self, folder: Path | None):  # -> PhysicsHead | None
        """The folder's physics head with the gains to embed with; None for plain features.
        The head is read as the deformation scores read it (``model_physics_head``), so the
        scores of stored embeddings take out the stretch that was put in."""
        from insarexplore.models.physics_head import checked_gain, checked_head
        from insarexplore.ssl.checkpoint import model_physics_head

        head = model_physics_head(folder) if folder is not None else None
        if self.gains is not None:
            pair = tuple(self.gains) if isinstance(self.gains, tuple | list) else ()
            if len(pair) != 2:
                raise ValueError(
                    f"gains: must be two numbers (gain, class_gain); got {self.gains!r}"
                )
            gains = tuple(
                checked_gain(g, f"gains ({name})") for g, name in zip(pair, ("gain", "class_gain"))
            )
            if head is None:
                if gains == (1.0, 1.0):
                    return None
                raise ValueError(
                    f"gains={gains}: the model has no physics head to stretch along "
                    f"({folder or 'a module'}); pretrain with the physics bank or use (1, 1)"
                )
            head = checked_head(
                head.classes,
                head.weight,
                head.bias,
                where=folder,
                gain=gains[0],
                class_gain=gains[1],
            )
        plain = head is None or (head.gain, head.class_gain) == (1.0, 1.0)
        return None if plain else head

    def _load(self) -> tuple[nn.Module, dict[str, Any]]:
        from insarexplore.models.serialization import load_encoder

        if isinstance(self.model, nn.Module):
            return self.model, dict(getattr(self.model, "config", {}))
        return load_encoder(self._where())

    def fit(self, X: Any = None, y: Any = None) -> Embedder:
        """Load the model and, when ``X`` is given, check that its channels fit the model."""
        self.device_ = _device(self.device)
        model, config = self._load()
        self.model_ = model.to(self.device_).eval()
        if self.device_.type == "cuda":
            self.model_ = self.model_.to(memory_format=torch.channels_last)
        self.config_ = config
        self.head_ = self._head(self._folder())
        self.stretch_ = self.head_.gains if self.head_ else [1.0, 1.0]
        self.n_features_out_ = int(getattr(model, "out_dim", config.get("out_dim", 0)))
        if X is not None:
            self._kind_of(X)
        return self

    def _kind_of(self, X: Any) -> str | None:
        """The data kind of X, checked against the model's channel kind and count."""
        want_kind = self.config_.get("channel_kind")
        want_ch = self.config_.get("in_channels")
        if isinstance(X, np.ndarray | torch.Tensor):
            if X.ndim != 4 or (want_ch is not None and X.shape[1] != want_ch):
                raise InSARDataError(
                    f"X: expected channel arrays (n, {want_ch}, H, W), got shape {tuple(X.shape)}"
                )
            return None
        kind = X.insar.kind if want_kind not in ("phase", "rgb") else want_kind
        if want_kind == "phase" and "phase" not in X:
            raise InSARDataError(
                "the model was trained on phase channels [cos, sin, coherence, valid] but the "
                "dataset has only 'image' (RGB renderings): use a model pretrained on renderings"
            )
        if want_kind == "rgb" and "image" not in X:
            raise InSARDataError(
                "the model was trained on RGB renderings but the dataset has no 'image' "
                "variable (phase only): render it (palettes.render_phase) or use a phase model"
            )
        return kind

    def transform(self, X: Any) -> np.ndarray:
        """``(n_samples, dim)`` float32 features of a Dataset or channel array."""
        if not hasattr(self, "model_"):
            raise ValueError("Embedder is not fitted yet: call fit() first")
        kind = self._kind_of(X)
        n = len(X) if kind is None else int(X.sizes["sample"])
        dim = self.n_features_out_
        size = int(self.size or self.config_.get("image_size") or 0)
        dihedral = self.dihedral
        if dihedral is None:
            dihedral = bool(self.config_.get("embed_dihedral", False))
        cuda = self.device_.type == "cuda"
        # results land in (pinned) host memory by asynchronous copies: no wait per batch
        out = torch.empty((n, dim), dtype=torch.float32, pin_memory=cuda and n * dim < 2**28)
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and self.amp)

        def read(start: int, stop: int) -> torch.Tensor:
            if kind is None:
                xb = torch.as_tensor(X[start:stop])
            else:
                # read here, on this thread: a dask-backed Dataset computed with the default
                # scheduler would queue behind the very tasks that wait for it (dask workers)
                part = X.isel(sample=slice(start, stop)).compute(scheduler="synchronous")
                xb = torch.from_numpy(part.insar.to_channels(kind))
            return xb.pin_memory() if cuda else xb

        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="embed", unit="img", disable=not self.progress or n == 0)
        ranges = [(s, min(n, s + self.batch_size)) for s in range(0, n, self.batch_size)]
        with torch.no_grad(), ThreadPoolExecutor(1, thread_name_prefix="embed-read") as pool:
            pending = deque(pool.submit(read, *r) for r in ranges[: max(1, self.prefetch)])
            for i, (start, stop) in enumerate(ranges):
                xb = pending.popleft().result()
                if i + len(pending) + 1 < len(ranges):
                    pending.append(pool.submit(read, *ranges[i + len(pending) + 1]))
                xb = xb.to(self.device_, torch.float32, non_blocking=True)
                if size and self.resize:
                    xb = resize_batch(xb, size, phase=xb.shape[1] == 4)
                if cuda:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with amp:
                    feats = _dihedral_mean(self.model_, xb) if dihedral else self.model_(xb)
                out[start:stop].copy_(feats.float(), non_blocking=cuda)
                bar.update(stop - start)
        if cuda:
            torch.cuda.synchronize(self.device_)
        bar.close()
        return out.numpy() if self.head_ is None else self.head_.stretch(out.numpy())


def _dihedral_mean(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The mean of ``model`` over the 8 rotations and reflections of ``x`` by 90 degrees
    (square images; a non-square batch gets the 4 flips of the rectangle)."""
    square = x.shape[-1] == x.shape[-2]
    total = None
    for k in range(4 if square else 1):
        r = torch.rot90(x, k, dims=(-2, -1)) if k else x
        for view in (r, r.flip(-1)) if square else (r, r.flip(-1), r.flip(-2), r.flip(-1, -2)):
            f = model(view).float()
            total = f if total is None else total + f
    assert total is not None
    return total / (8 if square else 4)


def embed_workspace(
    ws: Any,
    model_version: str | None = None,
    device: str | None = None,
    only_missing: bool = True,
    *,
    batch_size: int = 256,
    block: int = 8192,
    progress: bool = True,
) -> int:
    """Embed a workspace's samples with a model (default: current) and store them by id.

    With ``only_missing`` only samples without an embedding for that model are embedded, unless
    the stored ones record another stretch than the model's (``Embedder.stretch_``): then all,
    written block by block to a staging file that replaces the stored ones in one step
    (``Workspace.replacing_embeddings``: until then they stay as they were, and a crash leaves
    them so; memory stays bounded by a block).
    Each ``block`` of samples is appended to the stored embeddings as soon as it is done
    (``Workspace.append_embeddings``: only its rows are written), so an interrupted run keeps
    what it did. Returns the number of samples embedded.
    """
    from insarexplore.workspace import Workspace

    ws = ws if isinstance(ws, Workspace) else Workspace.open(ws)
    version = ws.resolve_model(model_version)
    ds = ws.open_data(lazy=True)
    ids = np.asarray(ds["sample"].values).astype(str)
    if ids.size == 0:
        return 0
    emb = Embedder(version, ws, batch_size=batch_size, device=device, progress=progress)
    emb.fit(ds.isel(sample=slice(0, 1)))
    restretch = False  # stored with another stretch (their record): every sample, one write
    if ws.has_embeddings(version):
        from insarexplore.errors import WorkspaceError
        from insarexplore.ssl.checkpoint import embedded_stretch

        try:
            meta = ws.load_embeddings(version)[2]
            restretch = embedded_stretch(meta, ws.model_dir(version)) != emb.stretch_
        except WorkspaceError as exc:  # unreadable: made again in full, replacing them
            log.warning("%s; embedding every sample again", exc)
            restretch = True
    todo = ws.missing_embedding_ids(version) if only_missing and not restretch else ids
    if len(todo) == 0:
        return 0
    pos = np.flatnonzero(np.isin(ids, np.asarray(todo).astype(str)))

    def blocks():
        for start in range(0, len(pos), block):
            part = pos[start : start + block]
            runs = np.split(part, np.flatnonzero(np.diff(part) != 1) + 1)  # contiguous reads
            yield (
                start,
                part,
                np.concatenate(
                    [emb.transform(ds.isel(sample=slice(r[0], r[-1] + 1))) for r in runs]
                ),
            )

    if restretch:  # staged on disk, then replaces the store at once: a crash before leaves it
        with ws.replacing_embeddings(version, ids[pos], stretch=emb.stretch_) as put:
            for start, _, vectors in blocks():
                put(start, vectors)
    else:
        for _, part, vectors in blocks():
            ws.append_embeddings(version, ids[part], vectors, stretch=emb.stretch_)
    return int(len(pos))


_MODEL_CACHE: dict[tuple[str, str, int], Any] = {}
_MODEL_LOCK = threading.Lock()


def _device_for(worker: Any, n_gpus: int) -> str:
    """The device of a dask worker: its GPU (worker name modulo ``n_gpus``), else the CPU."""
    if n_gpus < 1:
        return "cpu"
    if isinstance(worker, int) or str(worker).isdigit():
        index = int(worker)
    else:  # named workers: a stable hash of the name
        index = zlib.crc32(str(worker).encode())
    return f"cuda:{index % n_gpus}"


def _worker_device() -> str:
    """This dask worker's device. A worker that sees one GPU (dask-cuda sets
    ``CUDA_VISIBLE_DEVICES`` per worker) uses it; with several, the worker name picks one."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        name = os.getpid()
    return _device_for(name, n)


def _cached_embedder(model_path: str, device: str, batch_size: int) -> Embedder:
    """One fitted Embedder per (model, device, batch size) in this process, built once even
    when several worker threads ask at the same time."""
    key = (model_path, device, batch_size)
    with _MODEL_LOCK:
        emb = _MODEL_CACHE.get(key)
        if emb is None:
            emb = Embedder(model_path, batch_size=batch_size, device=device, progress=False)
            emb = _MODEL_CACHE[key] = emb.fit()
    return emb


def _embed_range(
    store_path: str,
    model_path: str,
    start: int,
    stop: int,
    batch_size: int,
    device: str | None = None,
):
    """One dask task: embed samples [start, stop) of a store (model cached per worker)."""
    from insarexplore.data.io.store import open_dataset

    emb = _cached_embedder(model_path, device or _worker_device(), batch_size)
    ds = open_dataset(store_path, lazy=True).isel(sample=slice(start, stop))
    ids = np.asarray(ds["sample"].values).astype(str)
    return ids, emb.transform(ds)


def embed_with_dask(
    store_path: str | Path,
    model_path: str | Path,
    client: Any,
    *,
    batch_size: int = 256,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed a Zarr store on a dask.distributed ``client``: one task per storage chunk.

    Returns ``(ids, vectors)`` in store order. Workers read their chunk straight from the
    store, so the store path must be reachable from every worker. ``device`` None: each
    worker picks its own (its GPU by worker name, else the CPU).
    """
    from insarexplore.data.io.store import open_dataset
    from insarexplore.ssl.data import chunk_size_of

    ds = open_dataset(store_path, lazy=True)
    n = int(ds.sizes["sample"])
    chunk = chunk_size_of(ds, ds.insar.kind)
    futures = [
        client.submit(
            _embed_range, str(store_path), str(model_path), s, min(n, s + chunk), batch_size,
            device, pure=False,
        )
        for s in range(0, n, chunk)
    ]  # fmt: skip
    parts = client.gather(futures)
    if not parts:
        return np.array([], dtype=str), np.zeros((0, 0), dtype=np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
