"""The ``ds.insar`` accessor: domain behaviour of the data model (xarray's accessor pattern)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import xarray as xr

from insarexplore.data import schema
from insarexplore.errors import InSARDataError

__all__ = [
    "InSARAccessor",
    "phase_channels",
    "rgb_channels",
    "footprint_rings",
    "footprint_features",
    "table_footprints",
    "CHANNEL_NAMES",
]

CHANNEL_NAMES = {"phase": ("cos", "sin", "coherence", "valid"), "rgb": ("r", "g", "b")}


def phase_channels(phase: np.ndarray, coherence: np.ndarray | None = None) -> np.ndarray:
    """``(n, h, w)`` wrapped phase -> ``(n, 4, h, w)`` float32 ``[cos, sin, coherence, valid]``.

    Invalid (NaN) pixels are zero in every channel; without coherence the validity mask stands in.
    """
    ph = np.asarray(phase, dtype=np.float32)
    valid = np.isfinite(ph)
    p = np.where(valid, ph, 0.0).astype(np.float32)
    v = valid.astype(np.float32)
    if coherence is None:
        coh = v
    else:
        c = np.asarray(coherence, dtype=np.float32)
        coh = np.where(np.isfinite(c), c, v) * v  # unknown coherence falls back to validity
    return np.stack([np.cos(p) * v, np.sin(p) * v, coh, v], axis=1)


def rgb_channels(image: np.ndarray) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 -> ``(n, 3, h, w)`` float32 in [0, 1]."""
    return np.moveaxis(np.asarray(image, dtype=np.float32) / 255.0, -1, 1).copy()


@xr.register_dataset_accessor("insar")
class InSARAccessor:
    """Data-model operations: ``ds.insar.validate()``, ``ds.insar.to_channels()``, ..."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    # -- contract ---------------------------------------------------------------------------
    def validate(self, check_values: bool = True) -> xr.Dataset:
        """Raise :class:`~insarexplore.errors.SchemaError` listing every violation; return ds."""
        schema.validate(self._ds, check_values=check_values)
        return self._ds

    @property
    def kind(self) -> str:
        """``"phase"`` when wrapped phase is present, else ``"rgb"``."""
        return "phase" if "phase" in self._ds else "rgb"

    @property
    def n_channels(self) -> int:
        return len(CHANNEL_NAMES[self.kind])

    def to_channels(self, kind: str | None = None) -> np.ndarray:
        """Model input ``(n, C, h, w)`` float32; see ``phase_channels`` and ``rgb_channels``."""
        kind = kind or self.kind
        ds = self._ds
        if kind == "phase":
            if "phase" not in ds:
                raise InSARDataError("to_channels(kind='phase'): the dataset has no 'phase'")
            coh = ds["coherence"].values if "coherence" in ds else None
            return phase_channels(ds["phase"].values, coh)
        if kind == "rgb":
            if "image" not in ds:
                raise InSARDataError("to_channels(kind='rgb'): the dataset has no 'image'")
            return rgb_channels(ds["image"].values)
        raise ValueError(f"kind must be 'phase' or 'rgb'; got {kind!r}")

    # -- per-sample metadata ----------------------------------------------------------------
    def sample_table(self):  # -> pandas.DataFrame
        """Every per-sample coordinate and variable as a DataFrame indexed by sample id."""
        import pandas as pd

        ds = self._ds
        cols: dict[str, Any] = {}
        for name, var in {**ds.coords, **ds.data_vars}.items():
            if name != "sample" and var.dims == ("sample",):
                values = np.asarray(var.values)
                if values.dtype.kind == "T":
                    values = values.astype(object)
                cols[name] = values
        index = pd.Index(np.asarray(ds["sample"].values).astype(object), name="sample")
        return pd.DataFrame(cols, index=index)

    # -- patches ----------------------------------------------------------------------------
    def patches(self, size: int, stride: int | None = None, min_valid: float = 0.0) -> xr.Dataset:
        """Cut every sample into ``size`` x ``size`` patches, each with its own footprint.

        Patches keep the parent's id as ``group`` and get ids ``<parent>_r<row>_c<col>``
        (pixel offsets). Patches whose fraction of valid phase is below ``min_valid`` are
        dropped. Footprints assume a north-up regular lon/lat grid, as in LiCSAR products.
        """
        ds = self._ds
        if size <= 0:
            raise ValueError(f"size must be positive; got {size}")
        stride = size if stride is None else stride
        if stride <= 0:
            raise ValueError(f"stride must be positive; got {stride}")
        h, w = ds.sizes["y"], ds.sizes["x"]
        if size > h or size > w:
            raise InSARDataError(f"patch size {size} exceeds the image size {h}x{w}")
        rows = range(0, h - size + 1, stride)
        cols = range(0, w - size + 1, stride)
        pixel_vars = [v for v in ("phase", "image", "coherence", "displacement") if v in ds]
        meta_vars = [v for v in ds.data_vars if ds[v].dims == ("sample",)]
        out: dict[str, list] = {v: [] for v in pixel_vars + meta_vars}
        coords: dict[str, list] = {c: [] for c in schema.PER_SAMPLE_COORDS}
        ids: list[str] = []
        extra_coords = [
            c for c in ds.coords if ds[c].dims == ("sample",) and c not in coords and c != "sample"
        ]
        for c in extra_coords:
            coords[c] = []
        for i in range(ds.sizes["sample"]):
            one = ds.isel(sample=i)
            sid = str(one["sample"].values)
            lon0, lon1 = float(one["lon_min"]), float(one["lon_max"])
            lat0, lat1 = float(one["lat_min"]), float(one["lat_max"])
            dlon, dlat = (lon1 - lon0) / w, (lat1 - lat0) / h
            arrays = {v: one[v].values for v in pixel_vars}
            for r in rows:
                for c in cols:
                    if "phase" in arrays:
                        frac = np.isfinite(arrays["phase"][r : r + size, c : c + size]).mean()
                        if frac == 0 or frac < min_valid:  # all-NaN patches are never kept
                            continue
                    for v in pixel_vars:
                        out[v].append(arrays[v][r : r + size, c : c + size])
                    for v in meta_vars:
                        out[v].append(one[v].values)
                    ids.append(f"{sid}_r{r}_c{c}")
                    coords["lon_min"].append(lon0 + c * dlon)
                    coords["lon_max"].append(lon0 + (c + size) * dlon)
                    coords["lat_max"].append(lat1 - r * dlat)
                    coords["lat_min"].append(lat1 - (r + size) * dlat)
                    for name in ("primary_date", "secondary_date", "frame", "source", "label"):
                        coords[name].append(one[name].values)
                    coords["group"].append(
                        str(one["group"].values) if "group" in one.coords else sid
                    )
                    for name in extra_coords:
                        coords[name].append(one[name].values)
        if not ids:
            raise InSARDataError(
                f"no patch of size {size} has at least {min_valid:.0%} valid pixels"
            )
        extra = {v: np.asarray(out[v]) for v in meta_vars}
        extra.update({c: np.asarray(coords[c]) for c in extra_coords})
        out_ds = schema.new_dataset(
            **{v: np.stack(out[v]) for v in pixel_vars},
            sample=ids,
            **{c: coords[c] for c in schema.PER_SAMPLE_COORDS},
            extra=extra,
            wavelength_m=ds.attrs.get("wavelength_m", schema.S1_WAVELENGTH_M),
            pixel_spacing_m=ds.attrs.get("pixel_spacing_m", float("nan")),
        )
        out_ds.attrs = {**ds.attrs, **out_ds.attrs}
        return out_ds

    # -- geography --------------------------------------------------------------------------
    def footprints_geojson(
        self, samples: Any = None, properties: list[str] | None = None
    ) -> dict[str, Any]:
        """Footprints as a GeoJSON FeatureCollection of lon/lat polygons (EPSG:4326).

        Samples with an unknown footprint (NaN) are left out. ``properties`` names extra
        per-sample columns to carry (``sample``, ``label`` and dates always come along).
        """
        table = self.sample_table()
        if samples is not None:
            table = table.loc[[str(s) for s in np.atleast_1d(samples)]]
        keep = ["label", "frame", "primary_date", "secondary_date", *(properties or [])]
        return table_footprints(table, keep)

    # -- pictures ---------------------------------------------------------------------------
    def thumbnail(
        self,
        sample: str | int,
        size: int | None = None,
        palette: str = "cyclic",
        variable: str | None = None,
    ) -> bytes:
        """PNG bytes of one sample: phase in a cyclic palette (or the stored RGB rendering)."""
        from PIL import Image

        from insarexplore.data.palettes import render_phase

        ds = self._ds
        one = (
            ds.isel(sample=sample)
            if isinstance(sample, (int, np.integer))
            else ds.sel(sample=str(sample))
        )
        variable = variable or ("phase" if "phase" in ds else "image")
        if variable == "phase":
            rgb = render_phase(one["phase"].values, palette=palette)
        elif variable == "image":
            rgb = np.asarray(one["image"].values, dtype=np.uint8)
        elif variable in ("coherence", "displacement"):
            rgb = _grey(one[variable].values, variable)
        else:
            raise ValueError(
                f"variable must be phase, image, coherence or displacement; got {variable!r}"
            )
        img = Image.fromarray(rgb, mode="RGB")
        if size:
            img = img.resize((size, size), Image.Resampling.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()


def _grey(values: np.ndarray, variable: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if variable == "coherence":
        lo, hi = 0.0, 1.0
    else:
        finite = v[np.isfinite(v)]
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
    g = np.clip((np.nan_to_num(v, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)
    if variable == "displacement":  # blue (away) -> white -> red (towards)
        r = np.clip(2 * g, 0, 1)
        b = np.clip(2 - 2 * g, 0, 1)
        gg = 1 - np.abs(2 * g - 1)
        rgb = np.stack([r, gg, b], -1)
    else:
        rgb = np.repeat(g[..., None], 3, axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.datetime64,)) or hasattr(value, "isoformat"):
        try:
            import pandas as pd

            ts = pd.Timestamp(value)
            return None if pd.isna(ts) else ts.strftime("%Y-%m-%d")
        except (ValueError, TypeError):
            return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    json.dumps(value, default=str)
    return value


# -- footprints as GeoJSON -------------------------------------------------------------------
# The one place footprints become GeoJSON: the accessor, the label exports (CSV/GeoJSON files,
# the dashboard's downloads) and the dashboard's map all build their polygons here.
def footprint_rings(boxes: Any, decimals: int | None = None) -> list:
    """Closed counter-clockwise GeoJSON rings ``[[lon, lat] x 5]`` of ``(n, 4)`` boxes
    ``(lon_min, lat_min, lon_max, lat_max)``, as nested lists of floats.

    ``decimals`` rounds the corners (the map draws with 5, about 1 m); None keeps them exact.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if decimals is not None:
        boxes = np.round(boxes, decimals)
    x0, y0, x1, y1 = boxes.T
    corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))
    return np.stack([np.column_stack(c) for c in corners], axis=1).tolist()


def footprint_features(
    ids: Any,
    boxes: Any,
    properties: Any = None,
    *,
    unknown: str = "skip",
    decimals: int | None = None,
) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection: one Polygon feature per sample (EPSG:4326, [lon, lat]).

    ``boxes`` is ``(n, 4)`` ``(lon_min, lat_min, lon_max, lat_max)`` aligned with ``ids``;
    ``properties`` (optional) one dict per sample, added after ``sample`` (the id). A box with
    a NaN is an unknown footprint: left out (``unknown="skip"``) or kept with a null geometry
    (``unknown="null"``).
    """
    if unknown not in ("skip", "null"):
        raise ValueError(f"unknown must be 'skip' or 'null'; got {unknown!r}")
    ids = [str(s) for s in ids]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(boxes)} footprints")
    props = list(properties) if properties is not None else [{}] * len(ids)
    if len(props) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(props)} property sets")
    ok = np.isfinite(boxes).all(axis=1)
    rings = iter(footprint_rings(boxes[ok], decimals))
    features = []
    for sid, good, extra in zip(ids, ok.tolist(), props):
        if not good and unknown == "skip":
            continue
        geometry = {"type": "Polygon", "coordinates": [next(rings)]} if good else None
        features.append(
            {
                "type": "Feature",
                "id": sid,
                "geometry": geometry,
                "properties": {"sample": sid, **(extra or {})},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def table_footprints(
    table: Any,
    columns: Any = (),
    *,
    unknown: str = "skip",
    decimals: int | None = None,
) -> dict[str, Any]:
    """:func:`footprint_features` of a per-sample table (indexed by sample id, with the
    footprint columns); ``columns`` present in it become properties (dates as ``YYYY-MM-DD``,
    NaN/NaT as null)."""
    missing = [c for c in schema.FOOTPRINT_COORDS if c not in table.columns]
    if missing:
        raise InSARDataError(f"table: no footprint column(s) {missing}")
    cols = [c for c in dict.fromkeys(columns) if c in table.columns]
    values = [[_jsonable(v) for v in table[c].tolist()] for c in cols]
    props = [dict(zip(cols, row)) for row in zip(*values)] if cols else None
    boxes = table[list(schema.FOOTPRINT_COORDS)].to_numpy(dtype=float)
    return footprint_features(table.index, boxes, props, unknown=unknown, decimals=decimals)
