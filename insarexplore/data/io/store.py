"""Saving and opening the data model: Zarr (appendable, lazy) and NetCDF.

Writes are atomic: data goes to a temporary sibling first and replaces the target only once it is
complete, so a crash or Ctrl-C never leaves a half-written store where a good one was.
Appends add samples to an existing Zarr store without rewriting it; an append interrupted
half-way is rolled back the next time the store is opened or appended to.

Every write of pixels (a new store, a replacement, an append) records a fresh random token in
the store's ``revision`` attribute, in the same atomic step as the data, so a store whose
pixels were written again under the same sample ids can be told from the one it replaced
(:meth:`insarexplore.workspace.Workspace.data_fingerprint`). Stores written before revisions
were recorded have none.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from insarexplore._atomic import abandoned, beside, claimed
from insarexplore.data import schema
from insarexplore.errors import InSARDataError

__all__ = [
    "save_dataset",
    "open_dataset",
    "append_dataset",
    "ZarrWriter",
    "store_sample_ids",
    "store_revision",
    "stamp_revision",
    "REVISION_ATTR",
]

log = logging.getLogger(__name__)
_ZARR_SUFFIXES = (".zarr",)
_NC_SUFFIXES = (".nc", ".nc4", ".netcdf")
# per-sample (1-D) chunk of streamed stores: every append rewrites the last, partly filled chunk
# (decoding and re-encoding its strings), so streams use shorter chunks than one-shot saves
_STREAM_PER_SAMPLE_CHUNK = 8192
# store attribute: a random token, new with every write of pixels (see the module doc)
REVISION_ATTR = "revision"


def new_revision() -> str:
    """A fresh revision token (random: two writes never share one)."""
    return secrets.token_hex(16)


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _ZARR_SUFFIXES or (path.is_dir() and (path / "zarr.json").exists()):
        return "zarr"
    if suffix in _NC_SUFFIXES:
        return "netcdf"
    raise InSARDataError(f"{path}: unknown store format (use a .zarr folder or a .nc file)")


def _encoding(
    ds: xr.Dataset, chunk: int | None, per_sample_chunk: int = 65536
) -> dict[str, dict[str, Any]]:
    n = ds.sizes["sample"]
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if "sample" not in var.dims:
            continue
        if var.ndim > 1:
            pix = int(np.prod([ds.sizes[d] for d in var.dims[1:]]))
            per_chunk = chunk or max(1, min(n, (4 << 20) // max(pix * var.dtype.itemsize, 1)))
            enc[name] = {"chunks": (per_chunk, *var.shape[1:]), "compressors": _fast_codec()}
        else:
            enc[name] = {"chunks": (max(chunk or 0, per_sample_chunk),)}
        if var.dtype.kind == "M":
            enc[name]["units"] = "seconds since 1970-01-01"
            enc[name]["dtype"] = "float64"
    return enc


def _fast_codec() -> list[Any]:
    """LZ4 through Blosc: about twice as fast to write and 5x faster to read than zstd."""
    from zarr.codecs import BloscCodec

    return [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]


def _prepare(ds: xr.Dataset) -> xr.Dataset:
    """Make per-sample strings plain objects so every backend stores them the same way."""
    ds = ds.copy()
    for name, var in ds.variables.items():
        if var.dtype.kind in "UT":
            ds[name] = var.copy(data=np.asarray(var.values).astype(object))
    for key, value in list(ds.attrs.items()):
        if isinstance(value, (bool, np.bool_)):
            ds.attrs[key] = int(value)
    return ds


def save_dataset(ds: xr.Dataset, path: str | os.PathLike, *, chunk: int | None = None) -> Path:
    """Save ``ds`` to ``path`` (``.zarr`` folder or ``.nc`` file) atomically; returns the path."""
    path = Path(path)
    fmt = _format(path)
    schema.validate(ds, where=str(path), check_values=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with claimed(path.parent):  # others see the temporary store as live while we write it
        _save_new(ds, path, fmt, chunk)
    return path


def _save_new(ds: xr.Dataset, path: Path, fmt: str, chunk: int | None) -> None:
    tmp = beside(path, checked=False)
    _remove(tmp)
    ds = _prepare(ds)
    ds.attrs[REVISION_ATTR] = new_revision()  # new pixels, whatever revision ``ds`` came with
    try:
        if fmt == "zarr":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                ds.to_zarr(
                    tmp, mode="w", zarr_format=3, consolidated=False, encoding=_encoding(ds, chunk)
                )
        else:
            enc = {
                k: {kk: vv for kk, vv in v.items() if kk not in ("chunks", "compressors")}
                for k, v in _encoding(ds, chunk).items()
            }
            for name, var in ds.variables.items():
                if var.dtype == object:
                    enc.setdefault(name, {})["dtype"] = str
            ds.to_netcdf(tmp, engine="h5netcdf", encoding=enc, invalid_netcdf=True)
        _replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _replace(tmp: Path, path: Path) -> None:
    """Move the complete store ``tmp`` to ``path``; a crash part-way loses neither the old
    store nor the new one (see :mod:`insarexplore._atomic`, :func:`_recover`)."""
    from insarexplore._atomic import replace

    replace(tmp, path)


def _recover(path: Path) -> bool:
    """Finish a replacement of ``path`` that a crash interrupted (True when it did)."""
    from insarexplore._atomic import recover

    return recover(Path(path))


def _remove(p: Path) -> None:
    if p.is_dir():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists():
        p.unlink()


def _pending(path: Path) -> Path:
    """The marker written beside a store before an append and removed once it is complete."""
    return path.with_name(f".{path.name}.append-pending.json")


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _repair(path: Path) -> None:
    """Roll back an append that was interrupted, so the store is as it was before it.

    An append first records the store's length and attributes (its revision among them) in a
    marker beside the store; if that marker is still there, every sample-dim array is cut back
    to the recorded length (pixel chunks written after it are dropped with it) and the
    attributes are put back, then the marker goes. Without a marker, arrays of unequal length
    (an interrupted stream) are trimmed to the shortest.
    """
    import json

    import zarr

    marker = _pending(path)
    target, attrs = None, None
    if marker.exists():
        try:
            text = marker.read_text()
            info = json.loads(text)
            target, pid = int(info["n"]), int(info.get("pid", 0))
            attrs = info.get("attrs")  # absent in markers of older versions
            tag = info.get("tag")  # absent in markers of older versions
        except (OSError, ValueError, KeyError, TypeError):
            text, target, pid, tag = None, None, 0, None
        tag = tag if isinstance(tag, str) else None
        if pid and not abandoned(pid, tag, marker.parent):
            return  # another process is appending right now (or may be): not ours to roll back
        if text is not None and _read_or_none(marker) != text:
            return  # its writer finished (or began another append) since: nothing to undo
    group = zarr.open_group(str(path), mode="r")
    lengths = {}
    for name, arr in group.arrays():
        dims = arr.metadata.dimension_names or arr.attrs.get("_ARRAY_DIMENSIONS") or ()
        if dims and dims[0] == "sample":
            lengths[name] = arr.shape[0]
    n = min(lengths.values()) if lengths else 0
    if target is not None:
        n = min(n, target)
    if any(v != n for v in lengths.values()):
        log.warning(
            "%s: an interrupted append left arrays of lengths %s; rolling back to %d samples",
            path,
            sorted(set(lengths.values())),
            n,
        )
        group = zarr.open_group(str(path), mode="r+")
        for name, length in lengths.items():
            if length != n:
                arr = group[name]
                arr.resize((n, *arr.shape[1:]))
    if isinstance(attrs, dict) and dict(group.attrs) != attrs:
        # the append's pieces and its new revision rewrote them: back to the store's own
        zarr.open_group(str(path), mode="r+").attrs.put(attrs)
    if marker.exists():
        marker.unlink()


def open_dataset(path: str | os.PathLike, *, lazy: bool = True) -> xr.Dataset:
    """Open a saved data-model store; ``lazy`` keeps pixel arrays as dask arrays.

    Per-sample coordinates (ids, footprints, dates, labels) are always loaded into memory, since
    every stage needs them and they are small next to the images.
    """
    path = Path(path)
    if not path.exists():
        raise InSARDataError(f"{path}: no such store")
    fmt = _format(path)
    try:
        if fmt == "zarr":
            _repair(path)
            ds = xr.open_zarr(path, consolidated=False, chunks={} if lazy else None)
        else:
            ds = xr.open_dataset(path, engine="h5netcdf", chunks={} if lazy else None)
    except (OSError, ValueError, KeyError) as exc:
        raise InSARDataError(f"{path}: cannot open store ({exc})") from exc
    if "sample" not in ds.variables or ds["sample"].dims != ("sample",):
        raise _no_ids(path)
    per_sample = [n for n, v in ds.variables.items() if v.dims == ("sample",)]
    ds = ds.assign_coords({}).copy()
    for name in per_sample:
        values = np.asarray(ds[name].values)
        if values.dtype.kind in "UT":
            values = values.astype(object)
        ds[name] = (("sample",), values)
        if name in ds.coords or name in schema.PER_SAMPLE_COORDS:
            ds = ds.set_coords(name)
    ds = ds.assign_coords(sample=np.asarray(ds["sample"].values).astype(object))
    if not lazy:
        ds = ds.load()
    ds.attrs.setdefault("pixel_spacing_m", float("nan"))
    schema.validate(ds, where=str(path), check_values=False)
    return ds


def store_sample_ids(path: str | os.PathLike) -> np.ndarray:
    """The sample ids of a Zarr store, read without touching the pixel arrays."""
    import zarr

    path = Path(path)
    _repair(path)
    group = zarr.open_group(str(path), mode="r")
    try:
        ids = group["sample"]
    except KeyError:
        raise _no_ids(path) from None
    return np.asarray(ids[:]).astype(object)


def _no_ids(path: Path) -> InSARDataError:
    return InSARDataError(
        f"{path}: the store has no 'sample' array (its sample ids): it is damaged; restore it "
        "from a copy, or make the workspace again"
    )


def store_revision(path: str | os.PathLike) -> str | None:
    """The revision token of a Zarr store (see the module doc), read without touching any
    array; None for a store written before revisions were recorded."""
    import zarr

    path = Path(path)
    _repair(path)
    value = zarr.open_group(str(path), mode="r").attrs.get(REVISION_ATTR)
    return str(value) if value else None


def stamp_revision(path: str | os.PathLike) -> str:
    """Give the Zarr store at ``path`` a fresh revision (for a complete store about to become
    a workspace's data); returns it."""
    import zarr

    revision = new_revision()
    zarr.open_group(str(path), mode="r+").attrs[REVISION_ATTR] = revision
    return revision


def _fill_for(var: xr.DataArray, n: int) -> np.ndarray:
    kind = var.dtype.kind
    if kind == "f":
        return np.full(n, np.nan, dtype=var.dtype)
    if kind == "M":
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    if kind in "iub":
        return np.zeros(n, dtype=var.dtype)
    return np.full(n, "", dtype=object)


def append_dataset(ds: xr.Dataset, path: str | os.PathLike) -> int:
    """Append the samples of ``ds`` to the Zarr store at ``path`` (created if absent).

    Refuses sample ids already in the store, images of another size, or variables the store
    does not know. Per-sample variables the store has but ``ds`` lacks are filled with
    NaN / "" / NaT. Returns the number of samples in the store afterwards.
    """
    path = Path(path)
    if not path.exists():
        save_dataset(ds, path)
        return int(ds.sizes["sample"])
    if _format(path) != "zarr":
        raise InSARDataError(f"{path}: appending needs a Zarr store (.zarr)")
    schema.validate(ds, where="appended dataset", check_values=False)
    existing = open_dataset(path, lazy=True)
    problems = []
    for dim in ("y", "x"):
        if existing.sizes.get(dim) != ds.sizes.get(dim):
            problems.append(
                f"{dim} size {ds.sizes.get(dim)} differs from the store's {existing.sizes.get(dim)}"
            )
    pixel_new = {v for v in ds.data_vars if ds[v].ndim > 1}
    pixel_old = {v for v in existing.data_vars if existing[v].ndim > 1}
    if not (pixel_old & {"phase", "image"}) <= pixel_new or not pixel_new <= pixel_old:
        problems.append(
            f"image variables {sorted(pixel_new)} do not fit the store's {sorted(pixel_old)}"
        )
    unknown = [v for v in ds.variables if v not in existing.variables and v != "band"]
    new_1d = [v for v in unknown if ds[v].dims == ("sample",)]  # added to the store after
    unknown = [v for v in unknown if v not in new_1d]
    if unknown:
        problems.append(f"variables unknown to the store: {sorted(unknown)}")
    dup = np.intersect1d(existing["sample"].values.astype(str), ds["sample"].values.astype(str))
    if dup.size:
        problems.append(
            f"{dup.size} sample id(s) already in the store: {', '.join(dup[:10])} (the same "
            "files again? a folder whose file names repeat another's: ingest --id-prefix)"
        )
    if problems:
        raise InSARDataError(f"cannot append to {path}: " + "; ".join(problems))
    n = ds.sizes["sample"]
    for name in sorted(pixel_old - pixel_new):  # optional layers (coherence, displacement)
        shape = (n, *existing[name].shape[1:])
        ds = ds.assign({name: (existing[name].dims, np.full(shape, np.nan, np.float32))})
    for name, var in existing.variables.items():
        if var.dims == ("sample",) and name not in ds.variables:
            ds = ds.assign({name: (("sample",), _fill_for(var, n))})
            if name in existing.coords:
                ds = ds.set_coords(name)
    extra = {v: ds[v].variable for v in new_1d}
    ds = ds.drop_vars(["band", *new_1d], errors="ignore")
    n0 = int(existing.sizes["sample"])
    attrs = dict(existing.attrs)
    existing.close()
    attrs[REVISION_ATTR] = _append_pieces(ds, path, n0)
    if extra:
        _add_per_sample(path, extra, n0, attrs)
    return n0 + n


def _add_per_sample(
    path: Path, extra: dict[str, xr.Variable], n0: int, attrs: dict[str, Any]
) -> None:
    """Give the store per-sample variables it did not have: earlier samples get NaN / "" /
    NaT, the appended ones their values. A crash here loses only these new variables."""
    full = {}
    for name, var in extra.items():
        values = np.asarray(var.values)
        if values.dtype.kind in "UT":
            values = values.astype(object)
        full[name] = (("sample",), np.concatenate([_fill_for(var, n0), values]))
    if not full:
        return
    out = _prepare(xr.Dataset(full, attrs=attrs))  # to_zarr("a") rewrites the group's attrs
    enc = {k: {"chunks": (_STREAM_PER_SAMPLE_CHUNK,)} for k in full}
    for name, var in out.variables.items():
        if var.dtype.kind == "M":
            enc[name].update(units="seconds since 1970-01-01", dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        out.to_zarr(path, mode="a", consolidated=False, encoding=enc)


def _piece_len(ds: xr.Dataset, budget: int = 256 << 20) -> int:
    """Samples per in-memory piece of an append (about ``budget`` bytes of pixels)."""
    per_sample = sum(
        int(np.prod(v.shape[1:])) * v.dtype.itemsize for v in ds.data_vars.values() if v.ndim > 1
    )
    return max(1, budget // max(per_sample, 1))


def append_hook(stage: str, done: int) -> None:
    """Called between the steps of an append (``stage`` "piece" after each piece, "revision"
    after the new revision, ``done`` samples written so far); tests replace it to simulate a
    crash at a chosen point."""


def _append_pieces(ds: xr.Dataset, path: Path, n0: int) -> str:
    """Append ``ds`` in memory-sized pieces, all or nothing; returns the store's new revision.

    The store's length and attributes go into a marker first; if the process dies part-way,
    the next open rolls every array back to that length and puts the attributes back
    (:func:`_repair`), so no sample id is ever left pointing at unwritten pixels. The new
    revision is written after the last piece, and the append counts as done once the marker
    is gone: a crash leaves the store as it was (old samples, old revision) or as it will be.
    Pieces are loaded into memory before writing, so the source's own (dask) chunking never
    has to line up with the store's.
    """
    marker = _pending(path)
    with claimed(marker.parent) as me:  # others see the marker as live while we append
        return _append_marked(ds, path, n0, marker, me)


def _append_marked(ds: xr.Dataset, path: Path, n0: int, marker: Path, me: str) -> str:
    import json

    import zarr

    before = dict(zarr.open_group(str(path), mode="r").attrs)
    tmp = marker.with_name(f"{marker.name}.tmp-{me}")
    pid, tag = me.split(".")
    tmp.write_text(json.dumps({"n": n0, "pid": int(pid), "tag": tag, "attrs": before}))
    os.replace(tmp, marker)
    n = ds.sizes["sample"]
    step = _piece_len(ds)
    revision = new_revision()
    try:
        for lo in range(0, n, step):
            piece = _prepare(ds.isel(sample=slice(lo, min(n, lo + step))).load())
            for var in piece.variables.values():
                var.encoding = {}
            piece.attrs.pop(REVISION_ATTR, None)  # to_zarr rewrites the group's attributes
            if before.get(REVISION_ATTR):
                piece.attrs[REVISION_ATTR] = before[REVISION_ATTR]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                piece.to_zarr(path, append_dim="sample", consolidated=False)
            append_hook("piece", lo + piece.sizes["sample"])
        zarr.open_group(str(path), mode="r+").attrs[REVISION_ATTR] = revision
        append_hook("revision", n)
    except BaseException:
        _repair(path)
        raise
    marker.unlink()
    return revision


def _release_freed_memory() -> None:
    """Hand memory freed by a write back to the system (glibc keeps it in its arenas, so a long
    stream's resident size would creep up write after write); a no-op elsewhere."""
    global _TRIM
    if _TRIM is None:
        try:
            import ctypes

            _TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM: Any = None


class ZarrWriter:
    """Stream chunks of samples into a new Zarr store with bounded memory.

    >>> with ZarrWriter("big.zarr") as w:          # doctest: +SKIP
    ...     for part in chunks:
    ...         w.write(part)

    Data goes to a temporary store that replaces ``path`` only when the block exits cleanly;
    the first write gives it a fresh revision (see the module doc).
    The first write lays out the store through xarray; later writes append to the open arrays
    directly, all at once, with the encodings the first one chose: through xarray each append
    re-read the store's metadata and extended ~45 per-sample arrays one after another (0.6 s a
    write, whatever its size). After every write all arrays have the same length, and
    ``sample`` is extended last, so the store reads back whole at any point.
    """

    def __init__(self, path: str | os.PathLike, *, chunk: int | None = None) -> None:
        self.path = Path(path)
        if _format(self.path) != "zarr":
            raise InSARDataError(f"{self.path}: ZarrWriter writes .zarr stores")
        self.chunk = chunk
        self.tmp = beside(self.path, checked=False)
        self.n = 0
        self._claim: Any = None
        self._arrays: dict[str, Any] = {}  # per-sample arrays of the open store (async zarr)
        self._encodings: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> ZarrWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._claim = claimed(self.path.parent)  # others see our temporary store as live
        self._claim.__enter__()
        _remove(self.tmp)
        self.n, self._arrays, self._encodings = 0, {}, {}
        return self

    def write(self, ds: xr.Dataset) -> None:
        """Add the samples of ``ds``; later writes must have the first one's variables."""
        ds = _prepare(ds)
        if self.n == 0:
            schema.validate(ds, where=str(self.path), check_values=False)
            ds.attrs[REVISION_ATTR] = new_revision()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                ds.to_zarr(
                    self.tmp,
                    mode="w",
                    zarr_format=3,
                    consolidated=False,
                    encoding=_encoding(
                        ds, self.chunk or ds.sizes["sample"], _STREAM_PER_SAMPLE_CHUNK
                    ),
                )
            self._open()
        elif not self._arrays:
            raise InSARDataError(f"{self.path}: an earlier write failed part-way; start again")
        else:
            self._append(ds)
        self.n += ds.sizes["sample"]
        _release_freed_memory()

    def _open(self) -> None:
        """Keep handles on the per-sample arrays and the encodings xarray gave them."""
        from zarr.core.sync import sync

        with xr.open_zarr(self.tmp, consolidated=False) as stored:
            self._encodings = {name: dict(var.encoding) for name, var in stored.variables.items()
                               if var.dims[:1] == ("sample",)}  # fmt: skip
        self._arrays = sync(_sample_arrays(self.tmp, set(self._encodings)))

    def _append(self, ds: xr.Dataset) -> None:
        from xarray.backends.zarr import encode_zarr_variable
        from zarr.core.sync import sync

        names = {name for name, var in ds.variables.items() if var.dims[:1] == ("sample",)}
        if names != set(self._arrays):
            raise InSARDataError(
                f"{self.path}: a write must have the per-sample variables of the first; "
                f"missing {sorted(set(self._arrays) - names)}, new {sorted(names - set(self._arrays))}"
            )
        data = {}
        for name in names:
            var = ds[name].variable.copy(deep=False)
            var.encoding = dict(self._encodings[name])
            values = np.asarray(encode_zarr_variable(var, name=name, zarr_format=3).values)
            if values.shape[1:] != self._arrays[name].shape[1:]:
                raise InSARDataError(
                    f"{self.path}: {name} has shape {values.shape[1:]} per sample; "
                    f"the store has {self._arrays[name].shape[1:]}"
                )
            data[name] = values
        try:
            sync(_append_all(self._arrays, data))
        except BaseException:
            # arrays may now differ in length (trimmed back on opening); later writes would
            # land at different offsets, so refuse them
            self._arrays = {}
            raise

    def __exit__(self, exc_type, exc, tb) -> None:
        self._arrays = {}
        try:
            if exc_type is None and self.n > 0:
                _replace(self.tmp, self.path)
            else:
                _remove(self.tmp)
        finally:
            claim, self._claim = self._claim, None
            if claim is not None:
                claim.__exit__(None, None, None)


async def _sample_arrays(path: Path, names: set[str]) -> dict[str, Any]:
    from zarr.api.asynchronous import open_group

    group = await open_group(store=str(path), mode="r+")
    return {name: arr async for name, arr in group.arrays() if name in names}


async def _append_all(arrays: dict[str, Any], data: dict[str, np.ndarray]) -> None:
    """Extend every array by its data concurrently, ``sample`` last: a crash part-way leaves
    arrays of unequal lengths (rolled back on opening) or a shorter ``sample``, never ids
    without data."""
    import asyncio

    await asyncio.gather(*(arrays[k].append(v) for k, v in data.items() if k != "sample"))
    if "sample" in data:
        await arrays["sample"].append(data["sample"])
