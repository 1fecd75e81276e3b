"""Hostile files in a folder or archive: skipped and reported by name, never a crash (issue 14)."""

from __future__ import annotations

import io
import json
import os
import resource
import tarfile

import numpy as np
import pytest
from PIL import Image

from insarexplore import cli
from insarexplore.data.io import hephaestus
from insarexplore.data.io.hephaestus import read_hephaestus_annotations
from insarexplore.data.io.images import read_image_folder


def _good(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
            folder / f"ok_{i}.png"
        )


def test_a_decompression_bomb_png_is_skipped_not_fatal(tmp_path):
    _good(tmp_path)
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 Mpx, 50 kB on disk
    ds = read_image_folder(tmp_path)
    skipped = json.loads(ds.attrs["skipped"])
    assert ds.sizes["sample"] == 3
    assert [s["file"].endswith("bomb.png") for s in skipped] == [True]
    assert "too large" in skipped[0]["problem"]


def test_a_non_utf8_file_name_is_reported_by_name(tmp_path, capsys):
    _good(tmp_path / "src")
    raw = os.fsencode(tmp_path / "src") + b"/caf\xe9.png"
    with open(raw, "wb") as fh:
        Image.fromarray(
            np.full((16, 16, 3), 9, np.uint8) + np.eye(16, dtype=np.uint8)[..., None]
        ).save(fh, "PNG")
    assert cli.main(["ingest", str(tmp_path / "ws"), str(tmp_path / "src")]) == 0
    err = capsys.readouterr().err
    assert "added 3 samples" in err and "caf\\xe9.png" in err and "not valid UTF-8" in err


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


def _annotation(uid: int) -> bytes:
    return json.dumps({"uniqueID": uid, "frameID": "155D_02579_100800",
                       "primary_date": "20170310", "secondary_date": "20170322",
                       "label": ["Non_Deformation"]}).encode()  # fmt: skip


def test_a_gzip_bomb_is_streamed_with_bounded_memory(tmp_path, monkeypatch):
    """A small archive that unpacks to far more than it holds is not unpacked in memory, and a
    huge member is skipped unread."""
    monkeypatch.setattr(hephaestus, "_UNPACKED_IN_MEMORY", 1 << 20)
    monkeypatch.setattr(hephaestus, "_MAX_MEMBER_BYTES", 1 << 20)
    big = b" " * (64 << 20)  # 64 MiB of spaces: compresses to about 64 kB
    archive = tmp_path / "ann.tar.gz"
    archive.write_bytes(_tar_gz({"a/1.json": _annotation(1), "a/huge.json": big,
                                 "a/2.json": _annotation(2)}))  # fmt: skip
    assert archive.stat().st_size < 1 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    df = read_hephaestus_annotations(archive)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert df["uniqueID"].tolist() == [1, 2]
    assert grown_mib < 48  # the 64 MiB member never sat in memory
    assert hephaestus._decompress(archive.read_bytes(), limit=1 << 20) is None


def test_a_truncated_archive_is_one_clear_error(tmp_path):
    from insarexplore.errors import InSARDataError

    raw = _tar_gz({"a/1.json": _annotation(1)})
    (tmp_path / "cut.tar.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InSARDataError, match="cut.tar.gz"):
        read_hephaestus_annotations(tmp_path / "cut.tar.gz")


@pytest.mark.parametrize("code", ["ENOSPC", "EROFS"])
def test_a_full_or_read_only_disk_is_one_line(tmp_path, monkeypatch, capsys, code):
    import errno

    import insarexplore.intake as intake

    _good(tmp_path / "src")

    def full(*args, **kwargs):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(tmp_path / "ws"))

    monkeypatch.setattr(intake, "add_to_workspace", full)
    assert cli.main(["ingest", str(tmp_path / "ws"), str(tmp_path / "src")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and os.strerror(getattr(errno, code)) in err[0] and "ws" in err[0]


def test_malformed_workspace_json_files_are_one_line_or_computed_again(tmp_path, capsys):
    """JSON files of the workspace edited into other shapes: its own file is a one-line error
    naming it; embeddings' and maps' records are reported unreadable, and the command that
    makes them makes them again."""
    from insarexplore.explore.projection import project

    from .conftest import make_workspace

    ws = make_workspace(tmp_path / "ws")
    meta_path = ws.path / "workspace.json"
    good = meta_path.read_text()
    for text, words in (("[]", "not a JSON object"), ('{"current_model": 5}', "current_model")):
        meta_path.write_text(text)
        assert cli.main(["info", str(ws.path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "workspace.json" in err[0] and words in err[0], err
    meta_path.write_text(good)
    version = ws.current_model
    emb_meta = ws.embeddings_dir / version / "meta.json"
    emb_good = emb_meta.read_text()
    for text in ("[]", "junk"):
        emb_meta.write_text(text)
        assert cli.main(["info", str(ws.path)]) == 0
        out = capsys.readouterr().out
        assert f"embedding  {version} (current): UNREADABLE: {emb_meta}" in out, out
        assert cli.main(["scores", str(ws.path)]) == 2  # readers: one line naming the file
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(emb_meta) in err[0], err
    emb_meta.write_text('{"model_version": "x"}')  # no counts: read from the arrays
    assert cli.main(["info", str(ws.path)]) == 0
    assert f"embedding  {version} (current): 40 x 8" in capsys.readouterr().out
    emb_meta.write_text(emb_good)
    kind, key = ws.list_artifacts("projection")[0]
    art_meta = ws.artifact_path(kind, key) / "meta.json"
    for text in ("[]", "{}"):
        art_meta.write_text(text)
        assert cli.main(["info", str(ws.path)]) == 0
        out = capsys.readouterr().out
        assert f"artefact   {kind}/{key}: " in out
        project(ws, "pca")  # the map is fitted again
        meta = json.loads(art_meta.read_text())
        assert meta["fit_hash"] and not ws.is_stale(meta)


def test_a_store_without_its_sample_ids_is_one_line(tmp_path, capsys):
    """`rm -r ws/data.zarr/sample`: info, embed and the readers name the damaged store (it was
    a KeyError traceback)."""
    import shutil

    from insarexplore.cli import main
    from insarexplore.data.io.store import open_dataset, store_sample_ids
    from insarexplore.errors import InSARDataError

    from .conftest import make_workspace

    ws = make_workspace(tmp_path / "ws")
    shutil.rmtree(ws.data_path / "sample")
    for read in (store_sample_ids, open_dataset):
        with pytest.raises(InSARDataError, match="data.zarr: the store has no 'sample' array"):
            read(ws.data_path)
    for command in (["info"], ["embed"], ["labels", "counts"]):
        assert main([*command, str(ws.path)]) == 2, command
        err = capsys.readouterr().err.strip()
        assert "no 'sample' array" in err and "\n" not in err, (command, err)
