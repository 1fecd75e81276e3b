"""The workspace: one folder that ties a project together.

::

    WORKSPACE/
      workspace.json          name, created, format version, current model version
      data.zarr               the interferograms (data model), appended to as data arrives
      models/<version>/       encoder weights, resumable checkpoint, metrics, meta.json
      embeddings/<version>/   vectors.npy + ids.npy + meta.json
      artifacts/<kind>/<key>/ arrays.npz + meta.json (projections, clusters, predictions, ...)
      labels.sqlite           the append-only label event log

Every embedding and artefact records the data fingerprint (a hash of the sample ids and of the
store's revision, which every write of pixels renews) and the model version it was made from,
so :meth:`Workspace.is_stale` detects results that no longer match the data or the current
model instead of showing them as current.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from insarexplore import _atomic
from insarexplore._checks import check_name
from insarexplore.errors import InSARDataError, WorkspaceError
from insarexplore.names import STRETCH_GAINS

__all__ = ["Workspace"]

log = logging.getLogger(__name__)

_FORMAT = "insarexplore-workspace"
_FORMAT_VERSION = 1
#: ``.staging-<what>-<owner>.zarr`` (see :func:`insarexplore._atomic.owner`)
_STAGING = re.compile(rf"^\.staging-.*-{_atomic.OWNER}\.zarr$")


def _checked_stretch(stretch: Any) -> list[float] | None:
    """``(gain, class_gain)`` as a list of two floats > 0 (how meta.json keeps it), or None."""
    if stretch is None:
        return None
    try:
        out = [float(g) for g in stretch]
    except (TypeError, ValueError):
        out = []
    lo, hi = STRETCH_GAINS
    if len(out) != 2 or not all(lo <= g <= hi for g in out):
        raise InSARDataError(
            f"stretch: two numbers from {lo:g} to {hi:g} (gain, class_gain); got {stretch!r}"
        )
    return out


def _checked_ids(ids: Any) -> np.ndarray:
    """Sample ids as a 1-D text array of distinct ids, or an error."""
    ids = np.asarray(ids).astype(str, copy=False)
    if ids.ndim != 1:
        raise InSARDataError(f"embeddings: ids of shape {ids.shape}, not a list")
    if np.unique(ids).size != ids.size:
        raise InSARDataError("embeddings: duplicate sample ids")
    return ids


def _checked_embeddings(ids: Any, vectors: Any) -> tuple[np.ndarray, np.ndarray]:
    """Ids as text and vectors as contiguous float32, one row per distinct id, or an error."""
    ids = _checked_ids(ids)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != ids.shape[0]:
        raise InSARDataError(f"embeddings: {vectors.shape} vectors for {ids.shape[0]} ids")
    return ids, vectors


def _same_width(model_version: str, stored: int, new: int) -> None:
    if stored != new:
        raise InSARDataError(
            f"embeddings of {model_version!r} have dimension {stored}, new ones {new}"
        )


def _stretch_record(stretch: Any) -> dict[str, Any]:
    return {"stretch": stretch} if stretch is not None else {}


def _update_json(path: Path, **changes: Any) -> None:
    """Rewrite the JSON object at ``path`` with ``changes`` (atomically)."""
    meta = json.loads(path.read_text())
    meta.update(changes)
    _write_json(path, meta)


@contextlib.contextmanager
def _flock(path: Path, waiting: str):
    """Hold an exclusive advisory ``flock`` on ``path`` (created if needed), yielding its
    descriptor; ``waiting`` goes to stderr when another holder makes this one wait. The
    kernel releases the lock however its holder exits, so none is ever left stale."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            import sys

            print(waiting, file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


class _Chunked:
    """A file as numpy's writer sees a stream: arrays are written in chunks through
    ``write``, so a full disk is the OSError Python raises (ENOSPC, naming nothing lost),
    not numpy's errno-less "requested and written" of ``ndarray.tofile``."""

    def __init__(self, fh: Any) -> None:
        self.write = fh.write


def _save_npy(target: Any, array: np.ndarray) -> None:
    """``np.save`` without pickles to a path or an open binary file, failing as Python does."""
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as fh:
            np.lib.format.write_array(_Chunked(fh), np.asanyarray(array), allow_pickle=False)
    else:
        np.lib.format.write_array(_Chunked(target), np.asanyarray(array), allow_pickle=False)


def _npy_header(fh: Any) -> tuple[tuple[int, int], tuple[Any, ...], int]:
    """``(version, (shape, fortran, dtype), data offset)`` of an open ``.npy`` stream."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(fh)
    else:
        header = np.lib.format.read_array_header_2_0(fh)
    return version, header, fh.tell()


def _npy_shape(path: Path) -> tuple[int, ...]:
    with path.open("rb") as fh:
        return tuple(_npy_header(fh)[1][0])


def _staged_npy(path: Path, n: int, dim: int) -> dict[str, Any]:
    """A ``(n, dim)`` float32 ``.npy`` file with its space reserved (a full disk is an
    ``OSError`` here, not a fault when rows are written): ``{"fd", "at" (data offset), "dim"}``
    for ``os.pwrite``. The header is numpy's, padded for growth, so rows can be appended."""
    arr = np.lib.format.open_memmap(path, "w+", np.float32, (n, dim))
    at = int(arr.offset)
    del arr
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, at + n * dim * 4)
    except BaseException:
        os.close(fd)
        raise
    return {"fd": fd, "at": at, "dim": dim}


def _append_rows(
    folder: Path, ids: np.ndarray, vectors: np.ndarray, model_version: str
) -> int | None:
    """Add rows to the embeddings in ``folder`` in place: stored ids get their rows
    overwritten, new ids are appended after the stored rows, then ``ids.npy`` is replaced
    atomically, then the header's row count is rewritten (numpy pads headers for growth).
    Returns the number of rows now stored, or None when the file cannot grow in place (not
    plain float32 rows, rows missing, no room in the header). ``meta.json`` is the caller's.

    A crash between the new ids and the new header leaves the rows written but not counted;
    the next append counts them again (the ids name them)."""
    old_ids = np.load(folder / "ids.npy", allow_pickle=False).astype(str)
    with (folder / "vectors.npy").open("r+b") as fh:
        version, (shape, fortran, dtype), data_at = _npy_header(fh)
        if len(shape) != 2 or fortran or dtype != np.float32:
            return None
        _same_width(model_version, shape[1], vectors.shape[1])
        row = shape[1] * 4
        size = os.fstat(fh.fileno()).st_size
        if len(old_ids) != shape[0] and size < data_at + len(old_ids) * row:
            return None
        n_old = len(old_ids)  # rows of an append cut short are counted again here
        where = {s: i for i, s in enumerate(old_ids)}
        pos = np.fromiter((where.get(s, -1) for s in ids), np.int64, count=len(ids))
        fresh = pos < 0
        new_ids = np.concatenate([old_ids, ids[fresh]])
        n_new = len(new_ids)
        prefix = 10 if version == (1, 0) else 12  # magic, version, header length
        text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({n_new}, {shape[1]}), }}"
        room = data_at - prefix
        if len(text) + 1 > room:  # no room to grow the header: the caller writes it anew
            return None
        for i in np.flatnonzero(~fresh):  # stored ids: their rows, in place
            fh.seek(data_at + int(pos[i]) * row)
            fh.write(vectors[i].tobytes())
        fh.seek(data_at + n_old * row)
        fh.write(vectors[fresh].tobytes())
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())
        tmp = _atomic.beside(folder / "ids.npy", checked=False)
        with tmp.open("wb") as out:
            _save_npy(out, new_ids.astype(str))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, folder / "ids.npy")
        fh.seek(prefix)
        fh.write((text + " " * (room - len(text) - 1) + "\n").encode("latin1"))
        fh.flush()
        os.fsync(fh.fileno())
    return int(n_new)


def _read_object(path: Path, fix: str = "") -> dict[str, Any]:
    """The JSON object in ``path``; anything else is a one-line error naming the file (and
    ``fix``, what to run to make it again). A missing file raises FileNotFoundError."""
    fix = f"; {fix}" if fix else ""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"{path}: unreadable ({exc}){fix}") from exc
    if not isinstance(obj, dict):
        raise WorkspaceError(f"{path}: not a JSON object{fix}")
    return obj


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, obj: dict[str, Any], *, checked: bool = False) -> None:
    """Write ``obj`` to ``path`` atomically; ``checked`` where other processes look for
    leftovers (the workspace's own folder; see :func:`insarexplore._atomic.beside`)."""
    tmp = _atomic.beside(path, checked=checked)
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the complete folder ``tmp`` to ``final``; a crash part-way loses neither result
    (:func:`insarexplore._atomic.recover` repairs it on the next read)."""
    _atomic.replace(tmp, final)


def _plain_npy(fh: Any) -> bool:
    """Whether an open ``.npy`` stream holds a plain array (no Python objects to unpickle)."""
    return not _npy_header(fh)[1][2].hasobject


def _is_plain(path: Path) -> bool:
    """Whether ``path`` (``.npy`` or ``.npz``) can be read without unpickling anything.

    Only the headers are read. Files of older versions stored strings as pickled objects;
    such files, and files that are not numpy files at all, are never loaded.
    """
    import zipfile

    try:
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    with z.open(name) as fh:
                        if not _plain_npy(fh):
                            return False
            return True
        with path.open("rb") as fh:
            return _plain_npy(fh)
    except (OSError, ValueError, SyntaxError, zipfile.BadZipFile):
        return False


def _storable(name: str, value: Any) -> np.ndarray:
    """An array numpy saves without pickling: strings become fixed-width unicode."""
    arr = np.asarray(value)
    if arr.dtype.hasobject:
        if not all(isinstance(v, str) for v in arr.flat):
            raise InSARDataError(
                f"{name}: holds Python objects; only numbers and strings can be stored"
            )
        arr = arr.astype(str)
    return arr


def _old_format(path: Path) -> str:
    return (
        f"{path}: written by an older insarexplore in a format that can run code when "
        "read, so it is not read"
    )


def _with_rendering(ds: Any) -> Any:
    """``ds`` with an ``image`` of its phase in the cyclic palette (no data black), made
    block by block as the append reads it."""
    import dask.array as da

    from insarexplore.data.palettes import render_phase

    phase = da.asarray(ds["phase"].data)
    image = phase.map_blocks(render_phase, dtype=np.uint8, new_axis=3, chunks=(*phase.chunks, (3,)))
    return ds.assign(image=(("sample", "y", "x", "band"), image))


def _checkpoint_step(path: Path) -> str:
    """`` at step N``: where a run's checkpoint resumes it (its own record; the metrics log
    lags behind it), or "" when it cannot be read."""
    from insarexplore.ssl.checkpoint import load_checkpoint

    try:
        step = load_checkpoint(path).get("step")
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported when resumed
        return ""
    return f" at step {int(step)}" if isinstance(step, int) else ""


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
        for up in (ws.path, *ws.path.parents):  # the nearest existing one must be a folder
            if up.exists():
                if not up.is_dir():
                    raise WorkspaceError(f"{ws.path}: {up} is a file, not a folder")
                break
        if ws.meta_path.exists():
            if not exist_ok:
                raise WorkspaceError(f"{ws.path}: a workspace already exists here")
            return cls.open(path)
        if ws.path.exists() and any(ws.path.iterdir()):
            raise WorkspaceError(f"{ws.path}: folder is not empty and is not a workspace")
        # built beside the target and renamed into place: a second process creating the same
        # workspace at the same moment finds either nothing or a whole workspace
        ws.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _atomic.beside(ws.path, "new", checked=False)  # nobody inspects the parent
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for sub in ("models", "embeddings", "artifacts"):
            (tmp / sub).mkdir()
        _write_json(
            tmp / ws.meta_path.name,
            {
                "format": _FORMAT,
                "format_version": _FORMAT_VERSION,
                "name": name or ws.path.name,
                "created": _now(),
                "current_model": None,
            },
        )
        try:
            if ws.path.exists():
                ws.path.rmdir()  # an empty folder the user made: ours to fill
            os.rename(tmp, ws.path)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if ws.meta_path.exists():  # another process won the race
                return cls.open(path) if exist_ok else cls.create(path, exist_ok=False)
            raise
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
        ws.recover()
        return ws

    def recover(self) -> None:
        """Repair results that a crash left half-replaced (the data store, embeddings,
        artefacts): each is rolled forward to its complete new version or back to the old."""
        _atomic.recover_all(self.path)
        _atomic.recover_all(self.embeddings_dir)
        if self.artifacts_dir.is_dir():
            for kind in self.artifacts_dir.iterdir():
                if kind.is_dir() and not kind.name.startswith("."):
                    _atomic.recover_all(kind)

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"

    # -- paths and metadata -----------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.path / "workspace.json"

    @property
    def meta(self) -> dict[str, Any]:
        try:
            meta = _read_object(self.meta_path)
        except FileNotFoundError as exc:
            raise WorkspaceError(f"{self.meta_path}: missing") from exc
        current = meta.get("current_model")
        if current is not None and not (isinstance(current, str) and current):
            raise WorkspaceError(
                f"{self.meta_path}: current_model must be a model version (text); got {current!r}"
            )
        return meta

    def _update_meta(self, **changes: Any) -> None:
        meta = self.meta
        meta.update(changes)
        _write_json(self.meta_path, meta, checked=True)

    def owns(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` (links followed) is the workspace folder or one of its own files:
        ``workspace.json``, the label store, the data store, ``models/``, ``embeddings/``,
        ``artifacts/``, and hidden files (locks, staging). Exports never write there."""
        real = Path(os.path.realpath(Path(path).expanduser()))  # a link loop: no error here
        try:
            rel = real.relative_to(os.path.realpath(self.path))
        except ValueError:
            return False
        if not rel.parts:
            return True
        head = rel.parts[0].casefold()  # as a case-insensitive filesystem (macOS) sees it
        own = ("workspace.json", "data.zarr", "models", "embeddings", "artifacts")
        return head.startswith((".", self.labels_path.name)) or head in own

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
        _atomic.recover(self.data_path)
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

    @contextlib.contextmanager
    def data_lock(self):
        """Hold the workspace's data-writer lock (one writer at a time, across processes).

        An advisory ``flock`` on ``.data.lock``: the kernel releases it when its holder exits,
        however it exits, so a killed writer never leaves a stale lock behind.
        """
        waiting = f"{self.path}: another process is adding data; waiting for it ..."
        with _flock(self.path / ".data.lock", waiting) as fd:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield

    def add_data(self, ds) -> int:
        """Add samples (create the store or append to it); returns the new sample count."""
        from insarexplore.data.io.store import append_dataset

        with self.data_lock():
            n = append_dataset(ds, self.data_path)
        self._fp_cache = None
        return n

    def staging_path(self, what: str = "ingest") -> Path:
        """A store path private to this process, for data on its way in (see :meth:`add_store`).

        Staging stores left by processes that no longer run are removed here.
        """
        for old in self.path.glob(".staging-*.zarr"):
            m = _STAGING.match(old.name)
            mine = m and _atomic.mine(m["pid"], m["tag"])
            if m and not mine and _atomic.abandoned(m["pid"], m["tag"], self.path):
                shutil.rmtree(old, ignore_errors=True)
        return self.path / f".staging-{what}-{_atomic.owner(self.path)}.zarr"

    def add_store(self, staging: str | os.PathLike, *, drop: Sequence[str] = ()) -> int:
        """Move a complete staging store into the workspace: it becomes ``data.zarr`` when
        there is none, else its samples (without the variables in ``drop``) are appended, all
        or nothing; phase data going to a store of renderings (``image``) is rendered in the
        cyclic palette on the way. The staging store is removed either way. Returns the new
        sample count."""
        from insarexplore.data.io.store import append_dataset, open_dataset, stamp_revision

        staging = Path(staging)
        try:
            with self.data_lock():
                if not self.has_data():
                    stamp_revision(staging)  # new pixels, however the store was made
                    os.replace(staging, self.data_path)
                else:
                    src = open_dataset(staging, lazy=True)
                    if "image" not in src and "phase" in src and self._holds("image"):
                        src = _with_rendering(src)  # before ``drop``, which may name phase
                    src = src.drop_vars(list(drop), errors="ignore")
                    append_dataset(src, self.data_path)
                    src.close()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._fp_cache = None
        return len(self.sample_ids())

    def _holds(self, variable: str) -> bool:
        import zarr

        return variable in zarr.open_group(str(self.data_path), mode="r")

    def sample_ids(self) -> np.ndarray:
        from insarexplore.data.io.store import store_sample_ids

        if not self.has_data():
            return np.array([], dtype=object)
        return store_sample_ids(self.data_path)

    def source_labels(self) -> dict[str, str]:
        """The labels the data came with (class folders, annotations; the store's ``label``
        variable), by sample id; samples without one are left out. Not the label store's."""
        if not self.has_data():
            return {}
        ds = self.open_data(lazy=True)
        try:
            if "label" not in ds.variables:
                return {}
            ids = ds["sample"].values.astype(str)
            labels = ds["label"].values.astype(str)
        finally:
            ds.close()
        return {str(s): str(lab) for s, lab in zip(ids, labels) if lab}

    def data_fingerprint(self) -> str:
        """A short hash of what the data store holds ("empty" without data).

        It hashes the sample ids (their number and order) and the store's revision: a random
        token that every write of pixels through :mod:`insarexplore.data.io.store` (creating
        the store, replacing it, appending to it, :meth:`add_data`, :meth:`add_store`) records
        anew, in the same atomic step as the pixels. So the fingerprint changes whenever
        samples are added, and also when the pixels are written again under the same ids (a
        store generated again, e.g. on another device, or replaced), while every read of an
        unchanged store, in any process, gives the same value (nothing random is drawn on
        reading). Stores written before revisions were recorded have none; their fingerprint
        is the hash of the ids alone, as it always was, so what was made from them stays
        current.
        """
        from insarexplore.data.io.store import store_revision

        if not self.has_data():
            return "empty"
        stamp = tuple(
            (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in [
                self.data_path / "zarr.json",  # the group's attributes: the revision
                self.data_path / "sample" / "zarr.json",
                *sorted((self.data_path / "sample").rglob("*")),
            ]
            if p.is_file()
        )
        if self._fp_cache and self._fp_cache[0] == stamp:
            return self._fp_cache[1]
        ids = self.sample_ids()
        revision = store_revision(self.data_path)
        h = hashlib.sha1(str(len(ids)).encode())
        h.update("\x1f".join(map(str, ids)).encode())
        if revision is not None:
            h.update(f"\x1erevision={revision}".encode())
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

    def _model_dirs(self) -> list[Path]:
        if not self.models_dir.exists():
            return []
        return sorted(
            p for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def list_models(self) -> list[str]:
        """Versions of finished models (those with saved encoder weights)."""
        return [p.name for p in self._model_dirs() if (p / "encoder.pt").exists()]

    def unfinished_runs(self) -> dict[str, str]:
        """Model folders without weights, and why: an interrupted run that `pretrain` resumes
        (it has a checkpoint), or a run that stopped before its first checkpoint."""
        out = {}
        for p in self._model_dirs():
            if (p / "encoder.pt").exists():
                continue
            if (p / "checkpoint.pt").exists():
                step = _checkpoint_step(p / "checkpoint.pt")
                out[p.name] = (
                    f"interrupted{step}; `insarexplore pretrain` with the same options resumes it"
                )
            else:
                out[p.name] = (
                    "stopped before its first checkpoint (nothing to resume; safe to delete)"
                )
        return out

    def resolve_model(self, model_version: str | None = None) -> str:
        """``model_version``, or the current model; a clear error when there is none."""
        check_name("model_version", model_version, optional=True)
        version = model_version or self.current_model
        if not version:
            raise WorkspaceError(f"{self.path}: no model yet (run `insarexplore pretrain`)")
        return version

    # -- embeddings -------------------------------------------------------------------------
    def save_embeddings(
        self, model_version: str, ids: Any, vectors: np.ndarray, *, stretch: Any = None
    ) -> int:
        """Store embeddings for ``model_version``, merged with those already stored by id.

        ``stretch``: the ``(gain, class_gain)`` the vectors were stretched by along the model's
        physics head (``embed.Embedder``), recorded in ``meta.json`` so that scores take out
        the stretch that was put in. Stored rows recorded with another stretch are dropped,
        not merged (they are embedded again as missing ones); rows without a record are kept.
        """
        ids, vectors = _checked_embeddings(ids, vectors)
        stretch = _checked_stretch(stretch)
        with self._embeddings_lock(model_version):
            return self._save_embeddings(model_version, ids, vectors, stretch)

    def _save_embeddings(
        self, model_version: str, ids: np.ndarray, vectors: np.ndarray, stretch: Any
    ) -> int:
        """:meth:`save_embeddings` with checked arguments, under the embeddings' lock."""
        if self.has_embeddings(model_version):  # else none yet, or an unsafe old format
            old_ids, old_vec, old_meta = self.load_embeddings(model_version)
            _same_width(model_version, old_vec.shape[1], vectors.shape[1])
            if stretch is None:  # the caller does not say: the stored rows' record stays
                stretch = old_meta.get("stretch")
            stale = old_meta.get("stretch", stretch) != stretch
            keep = ~np.isin(old_ids.astype(str), ids) & (not stale)
            ids = np.concatenate([old_ids[keep].astype(str), ids])
            vectors = np.concatenate([np.asarray(old_vec[keep]), vectors])
        tmp = self._embeddings_tmp(model_version)
        try:
            _save_npy(tmp / "vectors.npy", vectors)
            self._complete(model_version, tmp, ids, stretch)
            _replace_dir(tmp, self._embeddings_folder(model_version))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone once moved in; else a failed write
        return int(ids.size)

    def _embeddings_tmp(self, model_version: str, kind: str = "") -> Path:
        """A fresh staging folder beside the model's embeddings: ``.NAME.tmp-PID`` (written
        under the lock), or ``.NAME.KIND-TOKEN.tmp-PID`` for one that is written before the
        lock is taken. A dead process's are removed by ``Workspace.recover``."""
        final = self.embeddings_dir / self.model_dir(model_version).name
        tag = f".{kind}-{secrets.token_hex(4)}" if kind else ""
        tmp = final.with_name(f".{final.name}{tag}.tmp-{_atomic.owner(final.parent)}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def _complete(self, model_version: str, folder: Path, ids: np.ndarray, stretch: Any) -> None:
        """Write ``ids.npy`` and ``meta.json`` beside a written ``vectors.npy``."""
        _save_npy(
            folder / "ids.npy", ids.astype(str, copy=False)
        )  # fixed-width unicode: no pickles
        _write_json(
            folder / "meta.json",
            {
                "model_version": model_version,
                "n": int(ids.size),
                "dim": _npy_shape(folder / "vectors.npy")[1],
                "created": _now(),
                "data_fingerprint": self.data_fingerprint(),
                **({"stretch": stretch} if stretch is not None else {}),
            },
        )

    @contextlib.contextmanager
    def _embeddings_lock(self, model_version: str):
        """One writer of a model's embeddings at a time, across processes and threads
        (``flock`` on ``embeddings/.VERSION.lock``; the kernel releases it however its holder
        exits). A writer that has to wait says so on stderr."""
        self.embeddings_dir.mkdir(parents=True, exist_ok=True)
        name = self.model_dir(model_version).name
        waiting = f"{self.path}: another process is writing embeddings of {name}; waiting ..."
        with _flock(self.embeddings_dir / f".{name}.lock", waiting):
            yield

    @contextlib.contextmanager
    def replacing_embeddings(self, model_version: str, ids: Any, *, stretch: Any = None):
        """Write a whole new set of embeddings of ``model_version`` block by block, with
        memory bounded by a block: yields ``put(start, vectors)``, which writes rows
        ``start:start+len(vectors)`` (in the order of ``ids``) to a staging file on disk (the
        first block sets the width; its space is reserved then, so a full disk is an
        ``OSError`` there). When the ``with`` block ends every row must have been put; the
        staging folder then replaces the stored embeddings in one step, keeping the stored
        rows of other ids that another writer stored meanwhile with the same ``stretch``
        (None: no record). Until then, and if it ends with an error, the stored embeddings
        stay as they were (the staging folder is removed)."""
        ids = _checked_ids(ids)
        stretch = _checked_stretch(stretch)
        if ids.size == 0:
            raise InSARDataError("embeddings: no ids to write")
        tmp = self._embeddings_tmp(model_version, "staged")
        staged = tmp / "vectors.npy"
        done = np.zeros(len(ids), bool)
        file: dict[str, Any] = {}  # the staging file, opened by the first block

        def put(start: int, vectors: Any) -> None:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            stop = start + len(vectors) if vectors.ndim else -1
            if not file and vectors.ndim == 2 and vectors.shape[1] > 0:
                file.update(_staged_npy(staged, len(ids), vectors.shape[1]))
            if (
                not file
                or vectors.shape[1:] != (file["dim"],)
                or not 0 <= start <= stop <= len(ids)
            ):
                raise InSARDataError(
                    f"embeddings: {vectors.shape} vectors at row {start} of "
                    f"{(len(ids), file['dim']) if file else len(ids)}"
                )
            os.pwrite(file["fd"], vectors.tobytes(), file["at"] + start * vectors.shape[1] * 4)
            done[start:stop] = True

        try:
            yield put
            if not done.all():
                raise InSARDataError(
                    f"embeddings: {int((~done).sum())} of {len(ids)} rows were not written"
                )
            os.fsync(file["fd"])
            with self._embeddings_lock(model_version):
                self._complete(model_version, tmp, ids, stretch)
                old_ids, old_vec, old_meta = np.array([], str), np.zeros((0, 0)), {}
                with contextlib.suppress(WorkspaceError):  # unreadable ones: nothing to keep
                    if self.has_embeddings(model_version):  # rows stored meanwhile: kept
                        old_ids, old_vec, old_meta = self.load_embeddings(model_version)
                if len(old_ids):
                    keep = np.flatnonzero(~np.isin(old_ids.astype(str), ids))
                    if (
                        keep.size
                        and old_meta.get("stretch") == stretch
                        and old_vec.shape[1] == file["dim"]
                    ):
                        more = old_ids[keep].astype(str), np.asarray(old_vec[keep])
                        n = _append_rows(tmp, *more, model_version)
                        if n is not None:  # else not kept: embedded again as missing ones
                            _update_json(tmp / "meta.json", n=n)
                _replace_dir(tmp, self._embeddings_folder(model_version))
        finally:
            if "fd" in file:
                os.close(file["fd"])
            shutil.rmtree(tmp, ignore_errors=True)

    def append_embeddings(
        self, model_version: str, ids: Any, vectors: np.ndarray, *, stretch: Any = None
    ) -> int:
        """Add embeddings for ``model_version`` writing only the given rows (same files as
        :meth:`save_embeddings`): new ids are appended to ``vectors.npy`` in place (its
        header, padded by numpy for growth, is rewritten; the rows before are not touched),
        ids already stored get their rows overwritten in place, and the small ``ids.npy`` is
        replaced atomically. An embedding run thus writes each vector once instead of every
        stored vector per block. Falls back to :meth:`save_embeddings` when nothing
        compatible is stored yet. Returns the number of stored embeddings.

        A crash between the new ids and the new header leaves the rows written but not
        counted; the next append counts them again (the ids name them)."""
        ids, vectors = _checked_embeddings(ids, vectors)
        stretch = _checked_stretch(stretch)
        again = functools.partial(self._save_embeddings, model_version, ids, vectors, stretch)
        with self._embeddings_lock(model_version):
            if not self.has_embeddings(model_version):
                return again()
            folder = self._embeddings_folder(model_version)
            stored = stretch  # unreadable meta: the append below fails naming it
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stored = json.loads((folder / "meta.json").read_text()).get("stretch", stretch)
            if stretch is not None and stored != stretch:  # stored rows are stale: replaced
                return again()
            n = _append_rows(folder, ids, vectors, model_version)
            if n is None:  # not appendable in place: written anew
                return again()
            changes = dict(n=n, created=_now(), data_fingerprint=self.data_fingerprint())
            _update_json(folder / "meta.json", **changes, **_stretch_record(stretch))
            return n

    def _embeddings_folder(self, version: str) -> Path:
        folder = self.embeddings_dir / self.model_dir(version).name
        _atomic.recover(folder)
        return folder

    def has_embeddings(self, model_version: str | None = None) -> bool:
        """Whether embeddings of the model are stored (in a format that is safe to read)."""
        version = model_version or self.current_model
        if not version:
            return False
        folder = self._embeddings_folder(version)
        return (folder / "vectors.npy").exists() and all(
            _is_plain(folder / name) for name in ("ids.npy", "vectors.npy")
        )

    def load_embeddings(self, model_version: str | None = None, *, aligned: bool = False):
        """``(ids, vectors, meta)`` for a model version (default: the current model).

        With ``aligned=True`` the rows follow the data store's sample order and every sample
        must have an embedding (a clear error lists how many are missing).
        """
        version = self.resolve_model(model_version)
        folder = self._embeddings_folder(version)
        if not (folder / "vectors.npy").exists():
            raise WorkspaceError(
                f"{self.path}: no embeddings for model {version!r} (run `insarexplore embed`)"
            )
        for name in ("ids.npy", "vectors.npy"):
            if not _is_plain(folder / name):
                raise WorkspaceError(
                    f"{_old_format(folder / name)}; run `insarexplore embed {self.path}` "
                    "to compute the embeddings again"
                )
        meta = self._embeddings_meta(folder)
        try:
            ids = np.load(folder / "ids.npy", allow_pickle=False).astype(object)
            vectors = np.load(folder / "vectors.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise WorkspaceError(
                f"{folder}: unreadable embeddings ({exc}); run `insarexplore embed`"
            ) from exc
        if vectors.ndim != 2 or vectors.dtype.kind != "f" or len(ids) != vectors.shape[0]:
            raise WorkspaceError(
                f"{folder}: {vectors.shape} vectors of {vectors.dtype} for {len(ids)} ids; "
                "run `insarexplore embed --all` to compute them again"
            )
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

    @staticmethod
    def _embeddings_meta(folder: Path) -> dict[str, Any]:
        try:
            return _read_object(folder / "meta.json", "run `insarexplore embed` to make them again")
        except FileNotFoundError as exc:
            raise WorkspaceError(
                f"{folder / 'meta.json'}: missing; run `insarexplore embed` to make them again"
            ) from exc

    def missing_embedding_ids(self, model_version: str | None = None) -> np.ndarray:
        all_ids = self.sample_ids()
        version = self.resolve_model(model_version)
        if not self.has_embeddings(version):
            return all_ids
        have = np.load(self._embeddings_folder(version) / "ids.npy", allow_pickle=False)
        return all_ids[~np.isin(all_ids.astype(str), have.astype(str))]

    # -- artefacts --------------------------------------------------------------------------
    def _artifact_dir(self, kind: str, key: str) -> Path:
        for part in (kind, key):
            if not part or "/" in part or part.startswith("."):
                raise WorkspaceError(f"invalid artefact name {part!r}")
        folder = self.artifacts_dir / kind / key
        _atomic.recover(folder)
        return folder

    def save_artifact(
        self, kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None
    ) -> Path:
        """Store named arrays with provenance (data fingerprint added when not given).

        Arrays hold numbers or strings (object arrays of strings are stored as fixed-width
        unicode); anything that would need pickling is refused.
        """
        final = self._artifact_dir(kind, key)
        arrays = {k: _storable(f"artefact {kind}/{key}: {k}", v) for k, v in arrays.items()}
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _atomic.beside(final)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        np.savez(tmp / "arrays.npz", allow_pickle=False, **arrays)
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

    def keep_artifact(
        self, kind: str, key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None
    ) -> bool:
        """:meth:`save_artifact` for a result that can be computed again (a cache): on a
        workspace this process may read but not write, it is not kept (logged) and the caller
        goes on with it. Returns whether it was stored."""
        try:
            self.save_artifact(kind, key, arrays, meta)
        except OSError as exc:
            if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            log.warning("%s: %s %s not stored (%s)", self.path, kind, key, exc.strerror or exc)
            return False
        return True

    def has_artifact(self, kind: str, key: str) -> bool:
        """Whether the artefact is stored (in a format that is safe to read: one of an older
        version that held pickled objects counts as missing, so it is computed again)."""
        folder = self._artifact_dir(kind, key)
        return (folder / "meta.json").exists() and _is_plain(folder / "arrays.npz")

    def artifact_path(self, kind: str, key: str) -> Path:
        """Folder of an artefact (only ``arrays.npz`` and ``meta.json`` in it are read)."""
        return self._artifact_dir(kind, key)

    def artifact_meta(self, kind: str, key: str) -> dict[str, Any]:
        """The ``meta.json`` of an artefact, without reading its arrays."""
        path = self._artifact_dir(kind, key) / "meta.json"
        try:
            return _read_object(path, f"compute the {kind} again")
        except FileNotFoundError:
            raise WorkspaceError(f"{self.path}: no {kind} artefact {key!r}") from None

    def load_artifact(self, kind: str, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        folder = self._artifact_dir(kind, key)
        meta = self.artifact_meta(kind, key)
        path = folder / "arrays.npz"
        if not _is_plain(path):
            raise WorkspaceError(f"{_old_format(path)}; compute the {kind} again")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise WorkspaceError(f"{path}: unreadable ({exc}); compute the {kind} again") from exc
        return arrays, meta

    def list_artifacts(self, kind: str | None = None) -> list[tuple[str, str]]:
        kinds = (
            [kind]
            if kind
            else sorted(
                p.name
                for p in self.artifacts_dir.glob("*")
                if p.is_dir() and not p.name.startswith(".")
            )
        )
        out = []
        for k in kinds:
            _atomic.recover_all(self.artifacts_dir / k)
            for p in sorted((self.artifacts_dir / k).glob("*")):
                if not p.name.startswith(".") and (p / "meta.json").exists():
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
        out["unfinished_runs"] = self.unfinished_runs()
        emb = {}
        all_ids = np.asarray(ds["sample"].values).astype(str) if out["data"] else np.array([], str)
        stored = [p.name for p in self.embeddings_dir.glob("*") if p.is_dir()]
        for version in dict.fromkeys([*out["models"], *sorted(stored)]):
            if version.startswith("."):
                continue
            folder = self._embeddings_folder(version)
            if (folder / "meta.json").exists() or (folder / "vectors.npy").exists():
                try:
                    if not self.has_embeddings(version):
                        emb[version] = {"old_format": True}
                        continue
                    ids, vectors, _ = self.load_embeddings(version)
                    emb[version] = {
                        "n": int(len(ids)),
                        "dim": int(vectors.shape[1]),
                        "missing": int((~np.isin(all_ids, ids.astype(str))).sum()),
                    }
                except (WorkspaceError, OSError, ValueError) as exc:
                    emb[version] = {"unreadable": str(exc)}
        out["embeddings"] = emb
        arts = []
        for k, key in self.list_artifacts():
            art: dict[str, Any] = {"kind": k, "key": key}
            try:
                art["stale"] = self.is_stale(self.artifact_meta(k, key))
            except WorkspaceError as exc:
                art.update(stale=True, unreadable=str(exc))
            if not self.has_artifact(k, key):
                art["old_format"] = True
            arts.append(art)
        out["artifacts"] = arts
        out["labels_db"] = self.labels_path.exists()
        if out["labels_db"]:
            out["labels"] = self._label_counts()
        current = out["current_model"]
        out["current_model_missing"] = bool(current) and current not in out["models"]
        return out

    def _label_counts(self) -> dict[str, Any]:
        """Labelled samples per class, read without a lock (or why it could not be read)."""
        import sqlite3

        from insarexplore.explore.labels import LabelStore

        try:
            with LabelStore(self.labels_path, readonly=True) as store:
                return {"classes": store.counts()}
        except (sqlite3.Error, OSError, ValueError) as exc:
            return {"unreadable": str(exc)}
