import numpy as np
import pytest
import xarray as xr

from insarexplore.data.schema import concat, new_dataset, validate, wrap
from insarexplore.errors import InSARDataError, SchemaError


def test_new_dataset_defaults_follow_the_contract(tiny_phase_ds):
    ds = tiny_phase_ds
    validate(ds)
    assert ds["phase"].dtype == np.float32
    assert ds["phase"].dims == ("sample", "y", "x")
    assert ds.attrs["schema_version"] == 1
    assert ds.attrs["wavelength_m"] == pytest.approx(0.05546576)
    assert list(ds["group"].values) == list(ds["sample"].values)
    assert ds["primary_date"].dtype.kind == "M"


def test_missing_values_get_documented_defaults():
    ds = new_dataset(phase=np.zeros((2, 4, 4)))
    assert np.isnan(ds["lon_min"].values).all()
    assert np.isnat(ds["primary_date"].values).all()
    assert list(ds["label"].values) == ["", ""]
    assert len(set(ds["sample"].values)) == 2


def test_phase_is_wrapped_into_half_open_interval():
    ph = np.array([[[np.pi, -np.pi, 3 * np.pi, 0.5, np.nan]]])
    out = wrap(ph)
    finite = out[np.isfinite(out)]
    assert (finite >= -np.pi).all() and (finite < np.pi).all()
    assert np.isnan(out[0, 0, 4])
    ds = new_dataset(phase=ph)
    assert float(ds["phase"].max()) < np.pi


def test_grayscale_image_becomes_rgb():
    ds = new_dataset(image=np.zeros((3, 8, 8), np.uint8))
    assert ds["image"].shape == (3, 8, 8, 3)
    assert ds.insar.kind == "rgb"


def test_validate_reports_every_violation_at_once(tiny_phase_ds):
    bad = tiny_phase_ds.copy()
    bad["phase"] = bad["phase"].astype(np.float64)
    bad = bad.drop_vars("frame")
    bad.attrs.pop("wavelength_m")
    with pytest.raises(SchemaError) as err:
        validate(bad)
    text = str(err.value)
    assert "float64" in text and "'frame'" in text and "wavelength_m" in text
    assert len(err.value.problems) == 3


def test_validate_catches_values(tiny_phase_ds):
    bad = tiny_phase_ds.copy(deep=True)
    bad["phase"].values[0] = 5.0
    bad["coherence"].values[1] = 2.0
    bad["phase"].values[2] = np.nan
    with pytest.raises(SchemaError) as err:
        validate(bad)
    msg = str(err.value)
    assert "wrapped" in msg and "coherence" in msg and "all NaN" in msg and "id2" in msg


def test_duplicate_ids_are_named():
    with pytest.raises(SchemaError, match="not unique: a"):
        new_dataset(phase=np.zeros((2, 4, 4)), sample=["a", "a"])


def test_bad_inputs_name_the_problem():
    with pytest.raises(InSARDataError, match="'phase' or 'image'"):
        new_dataset()
    with pytest.raises(InSARDataError, match="coherence"):
        new_dataset(phase=np.zeros((2, 4, 4)), coherence=np.zeros((2, 4, 5)))
    with pytest.raises(InSARDataError, match="uint8"):
        new_dataset(image=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(InSARDataError, match="'label' has 1 values for 2"):
        new_dataset(phase=np.zeros((2, 4, 4)), label=["x"])
    with pytest.raises(SchemaError):
        validate(xr.Dataset())


def test_concat_refuses_duplicates_and_size_mismatch(tiny_phase_ds):
    other = new_dataset(phase=np.zeros((2, 16, 16)), sample=["n1", "n2"])
    both = concat([tiny_phase_ds, other])
    assert both.sizes["sample"] == 8
    with pytest.raises(SchemaError, match="not unique"):
        concat([tiny_phase_ds, tiny_phase_ds])
    with pytest.raises(InSARDataError, match="different sizes"):
        concat([tiny_phase_ds, new_dataset(phase=np.zeros((1, 8, 8)))])
