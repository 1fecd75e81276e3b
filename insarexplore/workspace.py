"""The workspace: one folder that ties a project together.

::

    WORKSPACE/
      workspace.json          name, created, format version, current model version
      data.zarr               the interferograms (data model), appended to as data arrives
      models/<version>/       encoder weights, resumable checkpoint, metrics, meta.json
      embeddings/<version>/   vectors.npy + ids.npy + meta.json
      artifacts/<kind>/<key>/ arrays.npz + meta.json (projections, clusters, predictions, ...)
      labels.sqlite           the append-only label event log

Every embedding and artefact records the data fingerprint (a hash of the sample ids) and the
model version it was made from, so :meth:`Workspace.is_stale` detects results that no longer
match the data or the current model instead of showing them as current.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from insarexplore.errors import InSARDataError, WorkspaceError

__all__ = ["Workspace", "open_workspace"]

_FORMAT = "insarexplore-workspace"
_FORMAT_VERSION = 1


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


class Workspace:
    """A project folder: data store, models, embeddings, artefacts and labels."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser().resolve()
        self._fp_cache: tuple[Any, str] | None = None

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def create(
        cls, path: str | os.PathLike, *, exist_ok: bool = True, name: str | None = None
    ) -> Workspace:
        """Create a workspace folder (or open it when it exists and ``exist_ok``)."""
        ws = cls(path)
        if ws.meta_path.exists():
            if not exist_ok:
                raise WorkspaceError(f"{ws.path}: a workspace already exists here")
            return cls.open(path)
        if ws.path.exists() and any(ws.path.iterdir()):
            raise WorkspaceError(f"{ws.path}: folder is not empty and is not a workspace")
        ws.path.mkdir(parents=True, exist_ok=True)
        for sub in ("models", "embeddings", "artifacts"):
            (ws.path / sub).mkdir(exist_ok=True)
        _write_json(
            ws.meta_path,
            {
                "format": _FORMAT,
                "format_version": _FORMAT_VERSION,
                "name": name or ws.path.name,
                "created": _now(),
                "current_model": None,
            },
        )
        return ws

    @classmethod
    def open(cls, path: str | os.PathLike) -> Workspace:
        """Open an existing workspace; a clear error when ``path`` is not one."""
        ws = cls(path)
        if not ws.path.exists():
            raise WorkspaceError(
                f"{ws.path}: no such folder (create one with Workspace.create "
                "or `insarexplore synth`/`ingest`)"
            )
        if not ws.meta_path.exists():
            raise WorkspaceError(f"{ws.path}: not an insarexplore workspace (no workspace.json)")
        meta = ws.meta
        if meta.get("format") != _FORMAT or meta.get("format_version", 0) > _FORMAT_VERSION:
            raise WorkspaceError(
                f"{ws.meta_path}: unsupported workspace format {meta.get('format')!r} "
                f"version {meta.get('format_version')}"
            )
        return ws

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # -- paths and metadata -----------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / "workspace.json"

    @property
    def meta(self) -> dict[str, Any]:
        try:
            return json.loads(self.meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkspaceError(f"{self.meta_path}: unreadable ({exc})") from exc

    def _update_meta(self, **changes: Any) -> None:
        meta = self.meta
        meta.update(changes)
        _write_json(self.meta_path, meta)

    @property
    def data_path(self) -> Path:
        return self.path / "data.zarr"

    @property
    def labels_path(self) -> Path:
        return self.path / "labels.sqlite"

    @property
    def models_dir(self) -> Path:
        return self.path / "models"

    @property
    def embeddings_dir(self) -> Path:
        return self.path / "embeddings"

    @property
    def artifacts_dir(self) -> Path:
        return self.path / "artifacts"

    # -- data -------------------------------------------------------------------------------
    def has_data(self) -> bool:
        return self.data_path.exists()

    def open_data(self, *, lazy: bool = True):  # -> xr.Dataset
        """The workspace's interferograms (dask-backed when ``lazy``)."""
        from insarexplore.data.io.store import open_dataset

        if not self.has_data():
            raise WorkspaceError(
                f"{self.path}: the workspace has no data yet "
                "(add some with `insarexplore synth` or `insarexplore ingest`)"
            )
        return open_dataset(self.data_path, lazy=lazy)

    def add_data(self, ds) -> int:
        """Add samples (create the store or append to it); returns the new sample count."""
        from insarexplore.data.io.store import append_dataset

        n = append_dataset(ds, self.data_path)
        self._fp_cache = None
        return n

    def sample_ids(self) -> np.ndarray:
        from insarexplore.data.io.store import store_sample_ids

        if not self.has_data():
            return np.array([], dtype=object)
        return store_sample_ids(self.data_path)

    def data_fingerprint(self) -> str:
        """A short hash of the sample ids: changes whenever samples are added or replaced."""
        if not self.has_data():
            return "empty"
        marker = self.data_path / "sample" / "zarr.json"
        stamp = tuple(
            (p.stat().st_mtime_ns, p.stat().st_size)
            for p in [marker, *sorted((self.data_path / "sample").rglob("*"))]
            if p.is_file()
        )
        if self._fp_cache and self._fp_cache[0] == stamp:
            return self._fp_cache[1]
        ids = self.sample_ids()
        h = hashlib.sha1(str(len(ids)).encode())
        h.update("\x1f".join(map(str, ids)).encode())
        fp = h.hexdigest()[:16]
        self._fp_cache = (stamp, fp)
        return fp

    # -- models -----------------------------------------------------------------------------
    @property
    def current_model(self) -> str | None:
        return self.meta.get("current_model")

    def set_current_model(self, version: str | None) -> None:
        if version is not None and not self.model_dir(version).exists():
            raise WorkspaceError(f"{self.path}: no model version {version!r}")
        self._update_meta(current_model=version)

    def new_model_dir(self, prefix: str = "ssl") -> tuple[str, Path]:
        """A fresh, uniquely named model folder: returns ``(version, path)``."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
        version = f"{prefix}-{stamp}-{secrets.token_hex(2)}"
        path = self.models_dir / version
        path.mkdir(parents=True)
        return version, path

    def model_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise WorkspaceError(f"invalid model version {version!r}")
        return self.models_dir / version

    def list_models(self) -> list[str]:
        if not self.models_dir.exists():
            return []
        return sorted(
            p.name for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def resolve_model(self, model_version: str | None = None) -> str:
        """``model_version``, or the current model; a clear error when there is none."""
        version = model_version or self.current_model
        if not version:
            raise WorkspaceError(f"{self.path}: no model yet (run `insarexplore pretrain`)")
        return version

    # -- embeddings -------------------------------------------------------------------------
    def save_embeddings(self, model_version: str, ids: Any, vectors: np.ndarray) -> int:
        """Store embeddings for ``model_version``, merged with those already stored by id."""
        ids = np.asarray(ids).astype(str)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
            raise InSARDataError(f"embeddings: {vectors.shape} vectors for {ids.shape[0]} ids")
        if np.unique(ids).size != ids.size:
            raise InSARDataError("embeddings: duplicate sample ids")
        final = self.embeddings_dir / self.model_dir(model_version).name
        if final.exists():
            old_ids, old_vec, _ = self.load_embeddings(model_version)
            if old_vec.shape[1] != vectors.shape[1]:
                raise InSARDataError(
                    f"embeddings of {model_version!r} have dimension "
                    f"{old_vec.shape[1]}, new ones {vectors.shape[1]}"
                )
            keep = ~np.isin(old_ids.astype(str), ids)
            ids = np.concatenate([old_ids[keep].astype(str), ids])
            vectors = np.concatenate([np.asarray(old_vec[keep]), vectors])
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.save(tmp / "vectors.npy", vectors)
        np.save(tmp / "ids.npy", ids.astype(object), allow_pickle=True)
        _write_json(
            tmp / "meta.json",
            {
                "model_version": model_version,
                "n": int(ids.size),
                "dim": int(vectors.shape[1]),
                "created": _now(),
                "data_fingerprint": self.data_fingerprint(),
            },
        )
        _replace_dir(tmp, final)
        return int(ids.size)

    def has_embeddings(self, model_version: str | None = None) -> bool:
        version = model_version or self.current_model
        return bool(version) and (self.embeddings_dir / version / "vectors.npy").exists()

    def load_embeddings(self, model_version: str | None = None, *, aligned: bool = False):
        """``(ids, vectors, meta)`` for a model version (default: the current model).

        With ``aligned=True`` the rows follow the data store's sample order and every sample
        must have an embedding (a clear error lists how many are missing).
        """
        version = self.resolve_model(model_version)
        folder = self.embeddings_dir / version
        if not (folder / "vectors.npy").exists():
            raise WorkspaceError(
                f"{self.path}: no embeddings for model {version!r} (run `insarexplore embed`)"
            )
        ids = np.load(folder / "ids.npy", allow_pickle=True).astype(object)
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        meta = json.loads((folder / "meta.json").read_text())
        if aligned:
            order = self.sample_ids()
            pos = {s: i for i, s in enumerate(ids)}
            missing = [s for s in order if s not in pos]
            if missing:
                raise WorkspaceError(
                    f"{len(missing)} sample(s) have no embedding for model "
                    f"{version!r} (run `insarexplore embed`)"
                )
            idx = np.fromiter((pos[s] for s in order), dtype=np.int64, count=len(order))
            ids, vectors = order, np.asarray(vectors[idx])
        return ids, vectors, meta

    def missing_embedding_ids(self, model_version: str | None = None) -> np.ndarray:
        all_ids = self.sample_ids()
        version = self.resolve_model(model_version)
        if not self.has_embeddings(version):
            return all_ids
        have = np.load(self.embeddings_dir / version / "ids.npy", allow_pickle=True)
        return all_ids[~np.isin(all_ids.astype(str), have.astype(str))]

    # -- artefacts --------------------------------------------------------------------------
    def _artifact_dir(self, kind: str, key: str) -> Path:
        for part in (kind, key):
            if not part or "/" in part or part.startswith("."):
                raise WorkspaceError(f"invalid artefact name {part!r}")
        return self.artifacts_dir / kind / key

    def save_artifact(
        self, kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None
    ) -> Path:
        """Store named arrays with provenance (data fingerprint added when not given)."""
        final = self._artifact_dir(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        np.savez(tmp / "arrays.npz", **{k: np.asarray(v) for k, v in arrays.items()})
        full = {
            "kind": kind,
            "key": key,
            "created": _now(),
            "data_fingerprint": self.data_fingerprint(),
            **(meta or {}),
        }
        _write_json(tmp / "meta.json", full)
        _replace_dir(tmp, final)
        return final

    def has_artifact(self, kind: str, key: str) -> bool:
        return (self._artifact_dir(kind, key) / "meta.json").exists()

    def artifact_path(self, kind: str, key: str) -> Path:
        """Folder of an artefact, for extra files (e.g. a pickled reducer) beside the arrays."""
        return self._artifact_dir(kind, key)

    def load_artifact(self, kind: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        folder = self._artifact_dir(kind, key)
        if not (folder / "meta.json").exists():
            raise WorkspaceError(f"{self.path}: no {kind} artefact {key!r}")
        with np.load(folder / "arrays.npz", allow_pickle=True) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays, json.loads((folder / "meta.json").read_text())

    def list_artifacts(self, kind: str | None = None) -> list[tuple[str, str]]:
        kinds = (
            [kind] if kind else sorted(p.name for p in self.artifacts_dir.glob("*") if p.is_dir())
        )
        out = []
        for k in kinds:
            for p in sorted((self.artifacts_dir / k).glob("*")):
                if (p / "meta.json").exists():
                    out.append((k, p.name))
        return out

    def is_stale(self, meta: dict[str, Any]) -> bool:
        """True when an artefact was made from other data, or from a model that is not current."""
        if meta.get("data_fingerprint") not in (None, self.data_fingerprint()):
            return True
        model = meta.get("model_version")
        return bool(model) and model != self.current_model

    # -- overview ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What is in the workspace and what is stale (the `insarexplore info` report)."""
        out: dict[str, Any] = {
            "path": str(self.path),
            "name": self.meta.get("name"),
            "current_model": self.current_model,
        }
        if self.has_data():
            ds = self.open_data()
            out["data"] = {
                "samples": int(ds.sizes["sample"]),
                "size": f"{ds.sizes['y']}x{ds.sizes['x']}",
                "variables": sorted(v for v in ds.data_vars if ds[v].ndim > 1),
                "fingerprint": self.data_fingerprint(),
            }
        else:
            out["data"] = None
        out["models"] = self.list_models()
        emb = {}
        for version in out["models"]:
            folder = self.embeddings_dir / version
            if (folder / "meta.json").exists():
                meta = json.loads((folder / "meta.json").read_text())
                emb[version] = {
                    "n": meta["n"],
                    "dim": meta["dim"],
                    "missing": int(self.missing_embedding_ids(version).size),
                }
        out["embeddings"] = emb
        out["artifacts"] = [
            {"kind": k, "key": key, "stale": self.is_stale(self.load_artifact(k, key)[1])}
            for k, key in self.list_artifacts()
        ]
        out["labels_db"] = self.labels_path.exists()
        return out


def open_workspace(path: str | os.PathLike, *, create: bool = False) -> Workspace:
    """Open (or, with ``create``, create) the workspace at ``path``."""
    return Workspace.create(path) if create else Workspace.open(path)
