"""The data fingerprint follows the pixels, not only the sample ids (issue 18, item 10).

Embeddings and artefacts record the fingerprint of the data they were made from; a store whose
pixels are written again under the same ids (generated again, on another device, or replaced)
must not leave them looking current.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import zarr

from insarexplore.data.io import store as store_mod
from insarexplore.data.io.store import REVISION_ATTR, save_dataset, store_revision
from insarexplore.data.schema import new_dataset
from insarexplore.data.synthetic import SyntheticConfig, generate, generate_to_zarr, iter_blocks
from insarexplore.workspace import Workspace


def _ids_only(ids) -> str:
    """The fingerprint as versions before revisions computed it (ids alone)."""
    h = hashlib.sha1(str(len(ids)).encode())
    h.update("\x1f".join(map(str, ids)).encode())
    return h.hexdigest()[:16]


def _phase_ds(ids, seed=0, **extra):
    rng = np.random.default_rng(seed)
    return new_dataset(
        phase=rng.uniform(-np.pi, np.pi, (len(ids), 8, 8)),
        sample=list(ids),
        extra={k: np.asarray(v, dtype=float) for k, v in extra.items()} or None,
    )


def test_pixels_generated_again_under_the_same_ids_get_a_new_fingerprint(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    generate_to_zarr(ws.data_path, 8, size=16, seed=3, difficulty="easy", progress=False)
    before = ws.open_data(lazy=False)
    fp = ws.data_fingerprint()
    version, _ = ws.new_model_dir()
    ws.set_current_model(version)
    ws.save_embeddings(version, ws.sample_ids(), np.zeros((8, 4), np.float32))
    meta = ws.load_embeddings()[2]
    assert meta["data_fingerprint"] == fp and not ws.is_stale(meta)

    # the same ids, other pixels (as the generator gives on another device): data made again
    generate_to_zarr(ws.data_path, 8, size=16, seed=3, difficulty="hard", progress=False)
    after = ws.open_data(lazy=False)
    assert list(after["sample"].values) == list(before["sample"].values)
    assert not np.array_equal(after["phase"].values, before["phase"].values)
    assert ws.data_fingerprint() != fp  # the same Workspace object: no stale cache either
    assert Workspace.open(ws.path).data_fingerprint() != fp
    assert ws.is_stale(meta)

    # replaced through save_dataset, again with the same ids
    fp2 = ws.data_fingerprint()
    save_dataset(after.assign(phase=-after["phase"]), ws.data_path)
    assert list(ws.sample_ids()) == list(before["sample"].values)
    assert ws.data_fingerprint() not in (fp, fp2)


def test_a_store_moved_in_gets_its_own_revision(tmp_path):
    """add_store: two stores with the same ids and the same recorded revision (one copied
    from the other, then its pixels changed by another tool) still differ once moved in."""
    ws = Workspace.create(tmp_path / "ws")
    a = save_dataset(_phase_ds(["s0", "s1", "s2"]), tmp_path / "a.zarr")
    b = tmp_path / "b.zarr"
    shutil.copytree(a, b)
    zarr.open_group(str(b), mode="r+")["phase"][:] = 0.5
    assert store_revision(a) == store_revision(b)
    ws.add_store(a)
    fp = ws.data_fingerprint()
    shutil.rmtree(ws.data_path)
    ws.add_store(b)
    assert list(ws.sample_ids()) == ["s0", "s1", "s2"]
    assert ws.data_fingerprint() != fp


def test_an_append_changes_the_fingerprint_and_its_revision_survives(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_phase_ds(["a", "b"]))
    fp0, rev0 = ws.data_fingerprint(), store_revision(ws.data_path)
    assert rev0
    # a new per-sample variable: written after the pixels, it must keep the new revision
    ws.add_data(_phase_ds(["c"], seed=1, depth_m=[5.0]))
    fp1, rev1 = ws.data_fingerprint(), store_revision(ws.data_path)
    assert fp1 != fp0 and rev1 not in (None, rev0)
    assert "depth_m" in ws.open_data()
    staging = save_dataset(_phase_ds(["d", "e"], seed=2), ws.staging_path())
    ws.add_store(staging)
    assert list(ws.sample_ids()) == ["a", "b", "c", "d", "e"]
    assert ws.data_fingerprint() not in (fp0, fp1)


def test_an_append_that_fails_after_its_revision_leaves_the_fingerprint(tmp_path, monkeypatch):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_phase_ds(["a", "b"]))
    fp, rev = ws.data_fingerprint(), store_revision(ws.data_path)

    def hook(stage, done):
        if stage == "revision":
            raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "append_hook", hook)
    with pytest.raises(KeyboardInterrupt):
        ws.add_data(_phase_ds(["c", "d"], seed=1))
    assert list(ws.sample_ids()) == ["a", "b"]
    assert store_revision(ws.data_path) == rev
    assert ws.data_fingerprint() == fp


_KILLER = """
import os, signal, sys
from insarexplore.data.io import store
from insarexplore.data.schema import new_dataset
from insarexplore.workspace import Workspace
import numpy as np
def hook(stage, done):
    if stage == "revision":
        os.kill(os.getpid(), signal.SIGKILL)
store.append_hook = hook
ws = Workspace.open(sys.argv[1])
ws.add_data(new_dataset(phase=np.ones((2, 8, 8)), sample=["c", "d"]))
"""


def test_kill_9_after_the_new_revision_leaves_the_workspace_as_it_was(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_phase_ds(["a", "b"]))
    fp = ws.data_fingerprint()
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(ws.path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert (ws.path / ".data.zarr.append-pending.json").exists()
    # the killed append had written its pixels and its revision: both are rolled back
    assert zarr.open_group(str(ws.data_path), mode="r")["phase"].shape[0] == 4
    again = Workspace.open(ws.path)
    assert list(again.sample_ids()) == ["a", "b"]
    assert again.data_fingerprint() == fp
    assert not (ws.path / ".data.zarr.append-pending.json").exists()


def test_an_unchanged_workspace_has_the_same_fingerprint_in_every_process(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_phase_ds(["a", "b", "c"]))
    fp = ws.data_fingerprint()
    assert ws.data_fingerprint() == fp
    assert Workspace(ws.path).data_fingerprint() == fp  # no cache
    code = "import sys; from insarexplore.workspace import Workspace; "
    code += "print(Workspace.open(sys.argv[1]).data_fingerprint())"
    out = subprocess.run([sys.executable, "-c", code, str(ws.path)],
                         capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    assert out.stdout.strip() == fp


def test_a_store_written_before_revisions_keeps_its_ids_only_fingerprint(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_phase_ds(["a", "b", "c"]))
    ids = ws.sample_ids()
    assert ws.data_fingerprint() != _ids_only(ids)  # a revision is part of it
    group = zarr.open_group(str(ws.data_path), mode="r+")
    attrs = dict(group.attrs)
    del attrs[REVISION_ATTR]
    group.attrs.put(attrs)  # as an older version wrote the store
    old = Workspace.open(ws.path)
    assert store_revision(old.data_path) is None
    assert old.data_fingerprint() == _ids_only(ids)
    old.add_data(_phase_ds(["d"], seed=1))  # its first append gives it a revision
    assert store_revision(old.data_path) is not None
    assert old.data_fingerprint() != _ids_only(old.sample_ids())


def test_the_generator_records_the_device_that_made_the_pixels(tmp_path):
    assert generate(4, size=16, progress=False).attrs["generator_device"] == "cpu"
    block = next(iter_blocks(4, config=SyntheticConfig(size=16)))
    assert block.attrs["generator_device"] == "cpu"
    ws = Workspace.create(tmp_path / "ws")
    generate_to_zarr(ws.data_path, 4, size=16, progress=False)
    assert ws.open_data().attrs["generator_device"] == "cpu"


@pytest.mark.gpu
def test_the_generator_records_cuda():
    ds = generate(4, size=16, device="cuda", progress=False)
    assert ds.attrs["generator_device"] == "cuda"
