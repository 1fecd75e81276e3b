import os
import subprocess
import sys

import numpy as np
import pytest

from insarexplore.data.io.store import (
    ZarrWriter,
    append_dataset,
    open_dataset,
    save_dataset,
    store_sample_ids,
)
from insarexplore.data.schema import new_dataset
from insarexplore.errors import InSARDataError


def _more(n=2, size=16, prefix="n"):
    rng = np.random.default_rng(1)
    return new_dataset(
        phase=rng.uniform(-np.pi, np.pi, (n, size, size)),
        coherence=rng.uniform(0, 1, (n, size, size)),
        sample=[f"{prefix}{i}" for i in range(n)],
        label="new",
    )


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_round_trip_is_lossless(tmp_path, tiny_phase_ds, suffix):
    path = save_dataset(tiny_phase_ds, tmp_path / f"d{suffix}")
    back = open_dataset(path, lazy=False)
    for var in ("phase", "coherence", "depth_m"):
        np.testing.assert_array_equal(back[var].values, tiny_phase_ds[var].values)
    for coord in ("sample", "label", "frame", "group", "primary_date", "lon_min"):
        np.testing.assert_array_equal(back[coord].values, tiny_phase_ds[coord].values)
    assert back.attrs["wavelength_m"] == tiny_phase_ds.attrs["wavelength_m"]
    assert back.attrs["pixel_spacing_m"] == 1000.0


def test_lazy_open_is_dask_backed(tmp_path, tiny_phase_ds):
    save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    lazy = open_dataset(tmp_path / "d.zarr")
    assert lazy["phase"].chunks is not None
    assert isinstance(lazy["label"].values[0], str)


def test_append_adds_without_rewriting(tmp_path, tiny_phase_ds):
    path = save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    first_chunk = path / "phase" / "c" / "0" / "0" / "0"
    before = first_chunk.stat().st_mtime_ns
    assert append_dataset(_more(), path) == 8
    assert first_chunk.stat().st_mtime_ns == before
    back = open_dataset(path, lazy=False)
    assert list(back["sample"].values[-2:]) == ["n0", "n1"]
    assert np.isnan(back["depth_m"].values[-1])  # filled for samples that lack it
    assert back["label"].values[-1] == "new"
    assert list(store_sample_ids(path)) == list(back["sample"].values)


def test_append_refuses_bad_additions(tmp_path, tiny_phase_ds):
    path = save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    with pytest.raises(InSARDataError, match="already in the store: id0"):
        append_dataset(tiny_phase_ds.isel(sample=[0]), path)
    with pytest.raises(InSARDataError, match="y size 8"):
        append_dataset(_more(size=8), path)
    with pytest.raises(InSARDataError, match="unknown to the store"):
        more = _more()
        append_dataset(more.assign(extra_img=(("sample", "y", "x"), more["phase"].values)), path)
    assert open_dataset(path).sizes["sample"] == 6


def test_append_adds_new_per_sample_variables(tmp_path, tiny_phase_ds):
    """A per-sample variable the store lacks is added (earlier samples get NaN), not refused,
    and the store's attributes survive."""
    path = save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    append_dataset(_more().assign(depth=("sample", np.array([1.5, 2.5]))), path)
    ds = open_dataset(path)
    assert ds.sizes["sample"] == 8 and ds.attrs["schema_version"] == 1
    np.testing.assert_array_equal(ds["depth"].values[-2:], [1.5, 2.5])
    assert np.isnan(ds["depth"].values[:6]).all()


def test_failed_save_keeps_the_good_store(tmp_path, tiny_phase_ds, monkeypatch):
    path = save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    import xarray as xr

    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", boom)
    with pytest.raises(RuntimeError):
        save_dataset(_more(), path)
    monkeypatch.undo()
    assert open_dataset(path).sizes["sample"] == 6
    assert [p.name for p in tmp_path.iterdir()] == ["d.zarr"]


def test_interrupted_append_is_rolled_back(tmp_path, tiny_phase_ds):
    path = save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    import zarr

    # simulate a crash after only the phase array was extended
    g = zarr.open_group(str(path), mode="r+")
    g["phase"].resize((8, 16, 16))
    ds = open_dataset(path, lazy=False)
    assert ds.sizes["sample"] == 6
    assert append_dataset(_more(), path) == 8


def test_killed_writer_never_replaces_a_good_store(tmp_path, tiny_phase_ds):
    path = save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    code = (
        "import os, numpy as np\n"
        "from insarexplore.data.io.store import ZarrWriter\n"
        "from insarexplore.data.schema import new_dataset\n"
        f"w = ZarrWriter({str(path)!r}).__enter__()\n"
        "w.write(new_dataset(phase=np.zeros((3, 16, 16)), sample=['a','b','c']))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ}, capture_output=True)
    assert proc.returncode != 0
    assert list(open_dataset(path)["sample"].values) == list(tiny_phase_ds["sample"].values)


def test_zarr_writer_streams_chunks(tmp_path):
    with ZarrWriter(tmp_path / "s.zarr") as w:
        for k in range(3):
            w.write(_more(4, prefix=f"c{k}_"))
    ds = open_dataset(tmp_path / "s.zarr")
    assert ds.sizes["sample"] == 12
    assert ds["sample"].values[-1] == "c2_3"


def test_missing_and_unknown_paths(tmp_path):
    with pytest.raises(InSARDataError, match="no such store"):
        open_dataset(tmp_path / "nope.zarr")
    with pytest.raises(InSARDataError, match="unknown store format"):
        save_dataset(_more(), tmp_path / "x.csv")


def test_append_fills_optional_layers_and_requires_phase(tmp_path, tiny_phase_ds):
    path = save_dataset(tiny_phase_ds, tmp_path / "d.zarr")
    append_dataset(new_dataset(phase=np.zeros((1, 16, 16)), sample=["p"]), path)
    assert np.isnan(open_dataset(path, lazy=False)["coherence"].values[-1]).all()
    with pytest.raises(InSARDataError, match="do not fit"):
        append_dataset(new_dataset(image=np.zeros((1, 16, 16, 3), np.uint8), sample=["q"]), path)


def test_zarr_writer_appends_stay_readable_and_match_the_parts(tmp_path):
    import xarray as xr

    parts = []
    for k in range(5):
        part = _more(3 + k, prefix=f"c{k}_")
        part["primary_date"] = part["primary_date"] + np.timedelta64(k, "D")
        parts.append(part.assign(depth_m=("sample", np.arange(3.0 + k) + 10 * k)))
    with ZarrWriter(tmp_path / "s.zarr", chunk=4) as w:
        for k, part in enumerate(parts):
            w.write(part)
            # the temporary store is whole after every write: equal lengths, ids last
            assert open_dataset(w.tmp).sizes["sample"] == sum(
                p.sizes["sample"] for p in parts[: k + 1]
            )
    got = open_dataset(tmp_path / "s.zarr", lazy=False)
    ref = xr.concat(parts, dim="sample")
    assert list(got["sample"].values) == list(ref["sample"].values)
    for name in ("phase", "coherence", "depth_m", "primary_date", "label", "lon_min"):
        np.testing.assert_array_equal(got[name].values, ref[name].values)


def test_zarr_writer_refuses_a_write_with_other_variables(tmp_path):
    with ZarrWriter(tmp_path / "s.zarr") as w:
        w.write(_more(2, prefix="a"))
        with pytest.raises(InSARDataError, match="extra_var"):
            w.write(_more(2, prefix="b").assign(extra_var=("sample", np.ones(2))))
        with pytest.raises(InSARDataError, match="per sample"):
            w.write(_more(2, size=8, prefix="c"))
        w.write(_more(2, prefix="d"))
    assert list(open_dataset(tmp_path / "s.zarr")["sample"].values) == ["a0", "a1", "d0", "d1"]
