"""Embedder contract, workspace embedding (incremental), and dask.distributed embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from insarexplore.embed import Embedder, embed_with_dask, embed_workspace
from insarexplore.errors import InSARDataError
from insarexplore.models import build_encoder, save_encoder


def _toy(n, seed=0, rgb=False, size=16):
    from insarexplore.data.palettes import render_phase
    from insarexplore.data.schema import new_dataset

    rng = np.random.default_rng(seed)
    phase = rng.uniform(-np.pi, np.pi, (n, size, size)).astype(np.float32)
    ids = [f"e{seed}_{i:03d}" for i in range(n)]
    if rgb:
        return new_dataset(image=render_phase(phase), sample=ids)
    return new_dataset(phase=phase, sample=ids)


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    return save_encoder(tmp_path / "m" / "encoder.pt", build_encoder("resnet-tiny", 4))


def test_embedder_contract(model_path):
    ds = _toy(10)
    emb = Embedder(model_path, batch_size=4, progress=False)
    assert emb.get_params()["batch_size"] == 4  # sklearn: __init__ only stores
    out = emb.fit(ds).transform(ds)
    assert out.shape == (10, 256) and out.dtype == np.float32 and np.isfinite(out).all()
    assert emb.n_features_out_ == 256
    chans = ds.insar.to_channels()
    np.testing.assert_allclose(emb.transform(chans), out, rtol=1e-4, atol=1e-5)
    # batching does not change the result (eval mode: no batch statistics)
    np.testing.assert_allclose(
        Embedder(model_path, batch_size=3, progress=False).fit().transform(ds),
        out,
        rtol=1e-4,
        atol=1e-5,
    )


def test_embedder_errors(model_path):
    with pytest.raises(InSARDataError, match="RGB renderings"):
        Embedder(model_path, progress=False).fit(_toy(3, rgb=True))
    with pytest.raises(InSARDataError, match="expected channel arrays"):
        Embedder(model_path, progress=False).fit().transform(np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(ValueError, match="not fitted"):
        Embedder(model_path).transform(_toy(2))
    with pytest.raises(ValueError, match="model="):
        Embedder().fit()


def test_embed_workspace_only_embeds_new(tmp_path, model_path):
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_toy(12))
    version, folder = ws.new_model_dir("test")
    save_encoder(folder / "encoder.pt", build_encoder("resnet-tiny", 4))
    ws.set_current_model(version)
    assert embed_workspace(ws, progress=False, batch_size=5) == 12
    ids1, vec1, _ = ws.load_embeddings(version)
    ws.add_data(_toy(5, seed=1))
    assert embed_workspace(ws, progress=False, batch_size=5) == 5
    assert embed_workspace(ws, progress=False) == 0
    ids, vec, _ = ws.load_embeddings(version, aligned=True)
    assert list(ids) == list(ws.sample_ids()) and vec.shape == (17, 256)
    keep = {s: v for s, v in zip(ids, vec)}
    for s, v in zip(ids1, vec1):  # old vectors untouched
        np.testing.assert_array_equal(keep[s], v)
    direct = Embedder(folder, progress=False).fit().transform(ws.open_data())
    np.testing.assert_allclose(vec, direct, rtol=1e-4, atol=1e-5)
    assert embed_workspace(ws, only_missing=False, progress=False) == 17


def test_embed_with_dask_local_cluster(tmp_path, model_path):
    from distributed import Client, LocalCluster

    from insarexplore.data.io.store import save_dataset

    ds = _toy(20)
    store = save_dataset(ds, tmp_path / "d.zarr", chunk=6)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        ids, vec = embed_with_dask(store, model_path, client, batch_size=4)
    assert list(ids) == list(ds["sample"].values)
    direct = Embedder(model_path, progress=False).fit().transform(ds)
    np.testing.assert_allclose(vec, direct, rtol=1e-4, atol=1e-5)


def test_embedder_resizes_to_training_size(tmp_path):
    from insarexplore.ssl.augment import resize_batch

    torch.manual_seed(2)
    enc = build_encoder("resnet-tiny", 4, image_size=8)
    ds = _toy(4, size=16)
    out = Embedder(enc, progress=False).fit().transform(ds)
    small = resize_batch(torch.as_tensor(ds.insar.to_channels()), 8).numpy()
    as_is = Embedder(enc, progress=False, resize=False).fit()
    np.testing.assert_allclose(out, as_is.transform(small), rtol=1e-4, atol=1e-5)


def test_embedding_blocks_are_appended_not_rewritten(tmp_path, model_path):
    """Later blocks and later runs write only their rows: vectors.npy is the same file
    throughout (a rewrite of every stored vector per block replaced it each time), and the
    stored files keep their format (plain arrays, ids as fixed-width unicode)."""
    import os

    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_toy(12))
    version, folder = ws.new_model_dir("test")
    save_encoder(folder / "encoder.pt", build_encoder("resnet-tiny", 4))
    ws.set_current_model(version)
    assert embed_workspace(ws, progress=False, batch_size=4, block=4) == 12
    path = ws.embeddings_dir / version / "vectors.npy"
    inode = os.stat(path).st_ino
    ws.add_data(_toy(7, seed=1))
    assert embed_workspace(ws, progress=False, batch_size=4, block=3) == 7
    assert os.stat(path).st_ino == inode
    ids, vec, meta = ws.load_embeddings(version, aligned=True)
    assert meta["n"] == 19 and vec.shape == (19, 256)
    direct = Embedder(folder, progress=False).fit().transform(ws.open_data())
    np.testing.assert_allclose(vec, direct, rtol=1e-4, atol=1e-5)
    assert np.load(ws.embeddings_dir / version / "ids.npy").dtype.kind == "U"
    # re-embedding everything overwrites rows in place; a dimension change is refused
    assert embed_workspace(ws, only_missing=False, progress=False, block=5) == 19
    assert os.stat(path).st_ino == inode and ws.load_embeddings(version)[1].shape == (19, 256)
    with pytest.raises(InSARDataError, match="dimension"):
        ws.append_embeddings(version, ["e0_000"], np.zeros((1, 8), np.float32))


def test_dask_workers_get_their_own_gpu_and_one_model(monkeypatch, model_path):
    import threading
    import time

    from insarexplore import embed

    assert [embed._device_for(w, 2) for w in (0, 1, 2, "3")] == [
        "cuda:0", "cuda:1", "cuda:0", "cuda:1"
    ]  # fmt: skip
    assert embed._device_for(0, 0) == "cpu"
    assert embed._device_for("tcp://a:1", 4) == embed._device_for("tcp://a:1", 4)
    fits = []
    real_fit = Embedder.fit

    def slow_fit(self, X=None, y=None):
        fits.append(self.device)
        time.sleep(0.2)
        return real_fit(self, X, y)

    monkeypatch.setattr(Embedder, "fit", slow_fit)
    monkeypatch.setattr(embed, "_MODEL_CACHE", {})
    got = []
    threads = [
        threading.Thread(
            target=lambda: got.append(embed._cached_embedder(str(model_path), "cpu", 4))
        )
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fits) == 1 and len({id(e) for e in got}) == 1


def test_transform_reads_ahead_in_order(model_path):
    """Prefetching batches on a thread keeps every row in its place (batch sizes that do not
    divide the set, one batch, more prefetch than batches)."""
    ds = _toy(11)
    ref = Embedder(model_path, batch_size=11, progress=False, prefetch=1).fit().transform(ds)
    for bs, pre in ((3, 2), (5, 8), (1, 3)):
        got = Embedder(model_path, batch_size=bs, progress=False, prefetch=pre).fit().transform(ds)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_cuda_embedding_matches_cpu(model_path):
    ds = _toy(40)
    cpu = Embedder(model_path, batch_size=16, progress=False, device="cpu").fit().transform(ds)
    gpu = Embedder(model_path, batch_size=16, progress=False, device="cuda").fit().transform(ds)
    cos = (cpu * gpu).sum(1) / (np.linalg.norm(cpu, axis=1) * np.linalg.norm(gpu, axis=1))
    assert cos.min() > 0.99  # bf16 on the GPU


def test_embedder_size_and_dihedral_mean(model_path):
    from insarexplore.ssl.augment import resize_batch

    ds = _toy(3, size=16)
    x = torch.as_tensor(ds.insar.to_channels())
    plain = Embedder(model_path, progress=False, resize=False).fit()
    # size: inputs resized to that side instead of the training size
    at8 = Embedder(model_path, progress=False, size=8).fit().transform(ds)
    np.testing.assert_allclose(at8, plain.transform(resize_batch(x, 8).numpy()), rtol=1e-4,
                               atol=1e-5)  # fmt: skip
    # dihedral: the mean over the 8 rotations/reflections, so invariant to each of them
    views = [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)]
    views += [v.flip(-1) for v in views]
    want = np.mean([plain.transform(v.numpy()) for v in views], axis=0)
    mean = Embedder(model_path, progress=False, resize=False, dihedral=True).fit()
    got = mean.transform(ds)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean.transform(x.flip(-2).numpy()), got, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean.transform(torch.rot90(x, 1, (-2, -1)).numpy()), got,
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    assert not np.allclose(plain.transform(x.flip(-2).numpy()), plain.transform(ds), atol=1e-3)


def test_dihedral_mean_of_a_non_square_batch_is_the_mean_of_its_four_flips():
    from insarexplore.embed import _dihedral_mean

    torch.manual_seed(5)
    enc = build_encoder("resnet-micro", 4, image_size=16).eval()
    x = torch.randn(2, 4, 12, 20)
    with torch.no_grad():
        got = _dihedral_mean(enc, x)
        want = torch.stack([enc(v) for v in (x, x.flip(-1), x.flip(-2), x.flip(-1, -2))]).mean(0)
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
        # so invariant to each flip of the rectangle (a rotation by 90 would change its shape)
        assert torch.allclose(_dihedral_mean(enc, x.flip(-2)), got, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(enc(x.flip(-2)), enc(x), atol=1e-3)


def test_embedder_takes_the_models_recorded_views(tmp_path):
    from insarexplore.models import load_encoder

    torch.manual_seed(3)
    enc = build_encoder("resnet-micro", 4, image_size=16)
    one = save_encoder(tmp_path / "one" / "encoder.pt", enc)
    eight = save_encoder(tmp_path / "eight" / "encoder.pt", enc,
                         {**enc.config, "embed_dihedral": True})  # fmt: skip
    module, config = load_encoder(eight)  # a recorded key, not a build argument
    assert config["embed_dihedral"] is True
    assert module.config["embed_dihedral"] is True  # the loaded module carries it too
    ds = _toy(3, size=16)
    x = Embedder(eight, progress=False).fit().transform(ds)
    np.testing.assert_allclose(x, Embedder(one, progress=False, dihedral=True).fit().transform(ds),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    single = Embedder(eight, progress=False, dihedral=False).fit().transform(ds)
    np.testing.assert_allclose(single, Embedder(one, progress=False).fit().transform(ds),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    assert not np.allclose(x, single, atol=1e-3)
    np.testing.assert_allclose(Embedder(module, progress=False).fit().transform(ds), x,
                               rtol=1e-4, atol=1e-5)  # fmt: skip


def test_embedder_stretches_along_the_models_physics_head(tmp_path):
    from insarexplore.data.synthetic.parameters import CLASSES
    from insarexplore.models.physics_head import HEAD_FILE, load_physics_head, save_physics_head

    torch.manual_seed(4)
    enc = build_encoder("resnet-micro", 4, image_size=16)
    path = save_encoder(tmp_path / "m" / "encoder.pt", enc)
    ds = _toy(5, size=16)
    plain = Embedder(path, progress=False).fit().transform(ds)  # no head: the features
    with pytest.raises(ValueError, match="no physics head"):
        Embedder(path, progress=False, gains=(10, 3)).fit()
    lin = torch.nn.Linear(plain.shape[1], len(CLASSES))
    save_physics_head(path.parent / HEAD_FILE, lin, CLASSES, embed_gain=10.0, embed_class_gain=3.0)
    head = load_physics_head(path.parent)
    for model in (path, path.parent):  # the encoder file or its folder
        emb = Embedder(model, progress=False).fit()
        assert (emb.head_.gain, emb.head_.class_gain) == (10.0, 3.0)
        np.testing.assert_allclose(emb.transform(ds), head.stretch(plain), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(Embedder(path, progress=False, gains=(1, 1)).fit().transform(ds),
                               plain, rtol=1e-4, atol=1e-5)  # fmt: skip
    three = Embedder(path, progress=False, gains=(3.0, 1.0)).fit().transform(ds)
    np.testing.assert_allclose(three @ head.axis, 3 * (plain @ head.axis), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(Embedder(enc, progress=False).fit().transform(ds), plain,
                               rtol=1e-4, atol=1e-5)  # a module: no folder, no head  # fmt: skip
    same = Embedder(path, progress=False, gains=(np.float32(3.0), np.int64(1))).fit()
    np.testing.assert_allclose(same.transform(ds), three, rtol=1e-5, atol=1e-6)  # numpy numbers
    for bad in (float("nan"), (3, 0), (3,), "10,3", (True, 1), (1e39, 1), (3, 10**400)):
        with pytest.raises(ValueError, match="gains"):
            Embedder(path, progress=False, gains=bad).fit()
    # a head whose rows are all alike has no direction of deformation: no stretch along it
    with torch.no_grad():
        row = lin.weight[:1].clone()  # rows alike but for rounding-sized differences
        lin.weight.copy_(row * (1 + 1e-7 * torch.arange(len(CLASSES))[:, None]))
    save_physics_head(path.parent / HEAD_FILE, lin, CLASSES)  # gains 1: loads, embeds plain
    assert Embedder(path, progress=False).fit().head_ is None
    with pytest.raises(ValueError, match="no direction of deformation"):
        Embedder(path, progress=False, gains=(10, 3)).fit()


def test_stored_embeddings_record_their_stretch_and_scores_follow_it(tmp_path, monkeypatch):
    """Vectors stored with one stretch are never mixed with, or scored as, another."""
    import json

    from insarexplore.data.synthetic.parameters import CLASSES
    from insarexplore.explore.deformation import deformation_scores
    from insarexplore.models.physics_head import HEAD_FILE, load_physics_head, save_physics_head
    from insarexplore.workspace import Workspace

    torch.manual_seed(5)
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_toy(9))
    version, folder = ws.new_model_dir("test")
    enc = build_encoder("resnet-micro", 4, image_size=16)
    save_encoder(folder / "encoder.pt", enc)
    ws.set_current_model(version)
    lin = torch.nn.Linear(enc.out_dim, len(CLASSES))
    save_physics_head(folder / HEAD_FILE, lin, CLASSES)  # gains 1: plain features
    assert embed_workspace(ws, progress=False, block=4) == 9
    meta = json.loads((ws.embeddings_dir / folder.name / "meta.json").read_text())
    assert meta["stretch"] == [1.0, 1.0]
    plain = deformation_scores(ws)["deformation"].to_numpy()
    # the head now stretches (10, 3): stored rows are stale, so all are embedded again
    save_physics_head(folder / HEAD_FILE, lin, CLASSES, embed_gain=10.0, embed_class_gain=3.0)
    _, before, meta = ws.load_embeddings(version)
    before = np.array(before)
    np.testing.assert_allclose(deformation_scores(ws)["deformation"], plain, rtol=1e-5)  # record
    # a run cut short while making them all again leaves the stored ones as they were
    transform, calls = Embedder.transform, []

    def fails_second_time(self, X):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return transform(self, X)

    monkeypatch.setattr(Embedder, "transform", fails_second_time)
    with pytest.raises(KeyboardInterrupt):
        embed_workspace(ws, progress=False, block=4)
    monkeypatch.setattr(Embedder, "transform", transform)
    _, still, meta = ws.load_embeddings(version)
    assert meta["stretch"] == [1.0, 1.0] and np.array_equal(np.asarray(still), before)
    assert not [p.name for p in ws.embeddings_dir.iterdir() if ".tmp-" in p.name]  # staging gone
    assert embed_workspace(ws, progress=False, block=4) == 9
    _, after, meta = ws.load_embeddings(version, aligned=True)
    assert meta["stretch"] == [10.0, 3.0]
    head = load_physics_head(folder)
    np.testing.assert_allclose(after, head.stretch(before), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(deformation_scores(ws)["deformation"], plain, rtol=1e-4, atol=1e-5)
    assert embed_workspace(ws, progress=False) == 0  # same stretch: nothing to do
    from insarexplore.explore.deformation import restretched_embeddings

    ids_r, features = restretched_embeddings(ws, (1, 1))  # the encoder's plain features again
    np.testing.assert_allclose(features, before, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(restretched_embeddings(ws, (10, 3))[1], after, rtol=1e-4, atol=1e-4)
    # a block of another stretch replaces the stored rows instead of joining them
    ids = ws.sample_ids()
    ws.append_embeddings(version, ids[:2], np.array(before[:2]), stretch=(1, 1))
    ids2, vec2, meta = ws.load_embeddings(version)
    assert list(ids2) == list(ids[:2]) and meta["stretch"] == [1.0, 1.0]
    ws.append_embeddings(version, ids[2:], np.array(before[2:]), stretch=[1.0, 1.0])
    assert ws.load_embeddings(version)[1].shape[0] == 9
    with pytest.raises(Exception, match="stretch"):
        ws.save_embeddings(version, ids[:1], np.array(before[:1]), stretch=(0, 1))
    with pytest.raises(Exception, match="stretch"):
        ws.save_embeddings(version, ids[:1], np.array(before[:1]), stretch=(1e6, 1))
    # a caller that does not say keeps the stored rows and their record
    ws.save_embeddings(version, ids[:1], np.array(before[:1]))
    _, kept, meta = ws.load_embeddings(version)
    assert kept.shape[0] == 9 and meta["stretch"] == [1.0, 1.0]


def test_embeddings_stored_before_records_count_as_made_then(tmp_path):
    """A store without a record was made by the Embedder of its time: the head file's gains,
    or plain for a model without one (a run cut short: its head only in its checkpoint)."""
    import json

    from insarexplore.ssl.checkpoint import embedded_stretch

    ws, version, folder = _embedded_toy(tmp_path, 6, seed=6)
    meta_path = ws.embeddings_dir / folder.name / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["stretch"]
    meta_path.write_text(json.dumps(meta))
    assert embedded_stretch(meta, folder) == [1.0, 1.0]
    assert embed_workspace(ws, progress=False) == 0  # plain then, plain now: nothing to do
    meta_path.write_text(json.dumps({**meta, "stretch": "ten"}))
    assert embed_workspace(ws, progress=False) == 6  # a record it cannot use: all again
    assert ws.load_embeddings(version)[2]["stretch"] == [1.0, 1.0]
    meta_path.write_text("[1, 2]")
    with pytest.raises(Exception, match="not a JSON object"):
        ws.load_embeddings(version)


def test_embed_makes_unreadable_stored_embeddings_again(tmp_path):
    """An embeddings record edited into junk is not a dead end: embed replaces it in full."""

    ws, version, folder = _embedded_toy(tmp_path, 9, seed=0)
    before = np.array(ws.load_embeddings(version, aligned=True)[1])
    meta_path = ws.embeddings_dir / folder.name / "meta.json"
    for text in ("[]", "junk", '{"stretch": "ten"}'):
        meta_path.write_text(text)
        assert embed_workspace(ws, progress=False, block=4) == 9, text
        _, after, meta = ws.load_embeddings(version, aligned=True)
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-5)
        assert meta["n"] == 9 and meta["stretch"] == [1.0, 1.0]


def _embedded_toy(tmp_path, n: int, seed: int):
    """A workspace of ``n`` toy samples embedded by a fresh (seeded) encoder without a head."""
    from insarexplore.workspace import Workspace

    torch.manual_seed(seed)
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_toy(n))
    version, folder = ws.new_model_dir("test")
    save_encoder(folder / "encoder.pt", build_encoder("resnet-micro", 4, image_size=16))
    ws.set_current_model(version)
    assert embed_workspace(ws, progress=False) == n
    return ws, version, folder


def test_a_model_name_is_a_version_of_the_workspace_not_a_folder_here(tmp_path, monkeypatch):
    """`embed ws --model extmodel` with a folder ./extmodel: it embedded with that outside
    model and stored the vectors as a model of the workspace."""
    from insarexplore.errors import WorkspaceError
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(_toy(6))
    version, folder = ws.new_model_dir("test")
    save_encoder(folder / "encoder.pt", build_encoder("resnet-tiny", 4))
    ws.set_current_model(version)
    monkeypatch.chdir(tmp_path)
    save_encoder(tmp_path / "extmodel" / "encoder.pt", build_encoder("resnet-tiny", 4))
    save_encoder(tmp_path / version / "encoder.pt", build_encoder("resnet-tiny", 4))
    with pytest.raises(WorkspaceError, match=f"no model 'extmodel' in .*its models: {version}"):
        embed_workspace(ws, "extmodel", progress=False)
    assert not (ws.embeddings_dir / "extmodel").exists()
    torch.manual_seed(0)
    assert embed_workspace(ws, version, progress=False) == 6  # the workspace's, not ./<version>
    mine = Embedder(folder, progress=False).fit().transform(ws.open_data())
    np.testing.assert_allclose(ws.load_embeddings(version, aligned=True)[1], mine, atol=1e-5)
    # a path still names a saved encoder (no workspace)
    assert Embedder(tmp_path / "extmodel", progress=False).fit().n_features_out_ == 256
