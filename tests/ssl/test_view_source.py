"""Training data brought down to the view's scale before views are cut (issue 13)."""

from __future__ import annotations

import numpy as np
import torch

from insarexplore.data.io.store import save_dataset
from insarexplore.data.schema import new_dataset
from insarexplore.ssl.data import ChannelDataset
from insarexplore.ssl.train import view_source_size


def _store(tmp_path, n=20, size=96):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = np.stack(
        [np.angle(np.exp(1j * rng.uniform(3, 8) * np.hypot(yy - 0.5, xx - 0.5))) for _ in range(n)]
    ).astype(np.float32)
    phase[:, :10, :10] = np.nan
    ds = new_dataset(phase=phase, sample=[f"s{i}" for i in range(n)])
    return save_dataset(ds, tmp_path / "s.zarr", chunk=4)


def test_view_source_size_is_four_thirds_of_the_view_and_never_upsamples():
    assert view_source_size(48, 227) == 64
    assert view_source_size(48, 64) == 64
    assert view_source_size(48, 40) == 40
    assert view_source_size(96, 500) == 128


def test_reduced_samples_are_the_same_preloaded_or_streamed(tmp_path):
    path = _store(tmp_path)
    pre = ChannelDataset(path, max_size=32)
    streamed = ChannelDataset(path, max_size=32, preload_bytes=0)
    full = ChannelDataset(path)
    assert pre._all is not None and streamed._all is None
    assert pre.shape == streamed.shape == (4, 32, 32) and full.shape == (4, 96, 96)
    for i in (0, 7, 19):
        a, b = pre[i], streamed[i]
        assert a.dtype == torch.float32 and a.shape == (4, 32, 32)
        torch.testing.assert_close(a, b, atol=2e-3, rtol=0)  # float16 storage
        # phasors stay unit length where valid; the no-data corner stays invalid
        mag = torch.sqrt(a[0] ** 2 + a[1] ** 2)
        assert torch.allclose(mag[a[3] > 0], torch.ones(()), atol=5e-3)
        assert (a[3, :2, :2] == 0).all()
