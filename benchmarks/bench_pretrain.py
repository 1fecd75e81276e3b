"""Pretraining and embedding speed (issues 4 and 13).

CPU: images per second of the whole pretraining step (store -> DataLoader -> augment two views
-> forward/backward/step) for the default ``resnet-micro`` (views at 48 px) and ``resnet-tiny``
(64 px) on 64 px data, against the same model's ceiling on random tensors, and of embedding.
GPU (when CUDA is available): the same at 128 and 224 px with ``resnet18``, against the ceiling
of the same model's forward+backward on random tensors already on the device; the target is
that data loading and augmentation cost at most 20 % of that ceiling.

    python benchmarks/bench_pretrain.py            # full
    python benchmarks/bench_pretrain.py --quick    # fewer steps
    python benchmarks/bench_pretrain.py --view-cost   # only: 224 px vs 64 px RGB store
    python benchmarks/bench_pretrain.py --check       # gpu_check.sh's rows (CUDA, or a CPU smoke)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

AREA = "pretrain"


def _store(folder: Path, n: int, size: int) -> Path:
    """A seeded phase store: fringes plus noise (content does not matter for speed)."""
    from insarexplore.data.io.store import save_dataset
    from insarexplore.data.schema import new_dataset

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = np.empty((n, size, size), np.float32)
    for i in range(n):
        phase[i] = np.angle(
            np.exp(
                1j
                * (
                    rng.uniform(5, 30) * np.hypot(yy - 0.5, xx - 0.5)
                    + rng.normal(0, 0.3, (size, size))
                )
            )
        )
    coh = rng.uniform(0.2, 1, (n, size, size)).astype(np.float32)
    return save_dataset(
        new_dataset(phase=phase, coherence=coh, sample=[f"b{i}" for i in range(n)]),
        folder / f"s{size}.zarr",
    )


def _rgb_store(folder: Path, n: int, size: int) -> Path:
    """A seeded store of colour renderings (cyclic palette) of fringes: kind "rgb"."""
    from insarexplore.data.io.store import save_dataset
    from insarexplore.data.palettes import render_phase
    from insarexplore.data.schema import new_dataset

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        ph = rng.uniform(5, 30) * np.hypot(yy - 0.5, xx - 0.5) + rng.normal(0, 0.3, (size, size))
        image[i] = render_phase(np.angle(np.exp(1j * ph)))
    return save_dataset(
        new_dataset(image=image, sample=[f"r{i}" for i in range(n)]), folder / f"rgb{size}.zarr"
    )


def view_cost(quick: bool = False) -> list[dict[str, Any]]:
    """Issue 13's target: a step on a 224 px RGB store costs about what it costs on a 64 px
    one at the same 48 px views (images/s ratio >= 0.7), measured in one run."""
    import torch

    steps = 5 if quick else 30
    n = 512 if quick else 2048
    rates, prep = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (64, 224):
            store = _rgb_store(Path(tmp), n, size)
            t0 = time.perf_counter()
            rates[size], first = _pipeline(store, "resnet-micro", 128, steps, torch.device("cpu"),
                                           0, with_start=True, image_size=48)  # fmt: skip
            prep[size] = first - t0
    ratio = rates[224] / rates[64]
    note = f"{n} samples, resnet-micro 48 px views, batch 128, 2 views"
    return [
        {"area": AREA, "metric": "pretrain img/s cpu rgb store 64px", "value": rates[64],
         "unit": "img/s", "note": note},
        {"area": AREA, "metric": "pretrain img/s cpu rgb store 224px", "value": rates[224],
         "unit": "img/s", "note": f"one-time preparation {prep[224]:.1f} s (64 px: {prep[64]:.1f} s)"},
        {"area": AREA, "metric": "view cost ratio 224px/64px", "value": ratio, "unit": "x",
         "note": f"target >= 0.7: {'met' if ratio >= 0.7 else 'NOT met'}"},
    ]  # fmt: skip


def _ceiling(arch: str, size: int, batch: int, steps: int, device) -> float:
    """Images/s of SimCLR forward+backward+step on random tensors already on the device."""
    import torch

    from insarexplore.models import build_encoder
    from insarexplore.ssl.methods import SimCLR

    model = SimCLR(build_encoder(arch, 4, phase_input="gradient")).to(device)  # as the loop
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x1 = torch.randn(batch, 4, size, size, device=device)
    x2 = torch.randn(batch, 4, size, size, device=device)
    if cuda:
        x1, x2 = (v.contiguous(memory_format=torch.channels_last) for v in (x1, x2))
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

    def step():
        with amp:
            loss = model(x1, x2)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


def _pipeline(store: Path, arch: str, batch: int, steps: int, device, workers: int,
              with_start: bool = False, image_size: int | None = None) -> Any:  # fmt: skip
    """Images/s of the real loop (store, loader, augmentations, step), timed after warm-up;
    with ``with_start`` also the time of the first step (after one-time preparation)."""
    import torch

    from insarexplore.ssl.train import PretrainConfig, pretrain

    times: list[float] = []
    cuda = torch.device(device).type == "cuda"

    def hook(info):
        if cuda and info["step"] in (3, steps + 3):
            torch.cuda.synchronize()  # the timed interval ends when the GPU's work does
        times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        cfg = PretrainConfig(arch=arch, steps=steps + 3, batch_size=batch, device=str(device),
                             num_workers=workers, monitor_every=0, tensorboard=False,
                             progress=False, checkpoint_every=10**9,
                             image_size=image_size)  # fmt: skip
        pretrain(store, cfg, out_dir=tmp, on_step=hook)
    rate = batch * steps / (times[-1] - times[2])
    return (rate, times[0]) if with_start else rate


def _embed_rate(store: Path, device, batch: int = 256, arch: str = "resnet-tiny",
                dihedral: bool = False) -> float:  # fmt: skip
    import torch

    from insarexplore.data.io.store import open_dataset
    from insarexplore.embed import Embedder
    from insarexplore.models import build_encoder

    ds = open_dataset(store)
    emb = Embedder(
        build_encoder(arch, 4),
        batch_size=batch,
        device=str(device),
        progress=False,
        dihedral=dihedral,
    ).fit()
    emb.transform(ds.isel(sample=slice(0, batch)))
    t = time.perf_counter()
    n = emb.transform(ds).shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t)


def check_rows(quick: bool = False) -> list[dict[str, Any]]:
    """The rows of ``benchmarks/gpu_check.sh``. With CUDA: the whole loop (store -> loader ->
    augment -> step) against the ceiling of the same model's forward+backward on tensors
    already on the device, resnet18 at 128 and 224 px (bf16, channels_last), target >= 0.8x;
    embedding images/s. Without CUDA those rows say they are skipped, and a small CPU run of
    the same code (resnet-micro, 48 px) stands in."""
    import torch

    rows: list[dict[str, Any]] = []
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp), 160, 48)
        rate = _pipeline(store, "resnet-micro", 32, 3, cpu, 0)
        ceil = _ceiling("resnet-micro", 48, 32, 3, cpu)
        rows.append({"area": AREA, "metric": "loop/ceiling cpu resnet-micro 48px (smoke)",
                     "value": rate / ceil, "unit": "x",
                     "note": f"loop {rate:.0f} img/s, ceiling {ceil:.0f} img/s, batch 32"})  # fmt: skip
        rows.append({"area": AREA, "metric": "embed img/s cpu resnet-micro (smoke)",
                     "value": _embed_rate(store, cpu, 64, "resnet-micro"), "unit": "img/s",
                     "note": "160 x 48 px"})  # fmt: skip
        if not torch.cuda.is_available():
            for size in (128, 224):
                rows.append({"area": AREA, "metric": f"loop/ceiling cuda resnet18 {size}px",
                             "value": float("nan"), "unit": "x",
                             "note": "skipped: CUDA not available"})  # fmt: skip
            rows.append({"area": AREA, "metric": "embed img/s cuda", "value": float("nan"),
                         "unit": "img/s", "note": "skipped: CUDA not available"})  # fmt: skip
            return rows
        gpu = torch.device("cuda")
        name = torch.cuda.get_device_name()
        steps = 10 if quick else 30
        for size in (128, 224):
            gstore = _store(Path(tmp), 2048, size)
            ceil = _ceiling("resnet18", size, 256, steps, gpu)
            rate = _pipeline(gstore, "resnet18", 256, steps, gpu, 6)
            ratio = rate / ceil
            rows.append({"area": AREA, "metric": f"loop/ceiling cuda resnet18 {size}px",
                         "value": ratio, "unit": "x",
                         "note": f"{name}: loop {rate:.0f} img/s, ceiling {ceil:.0f} img/s "
                                 f"(bf16, channels_last, batch 256); target >= 0.8: "
                                 f"{'met' if ratio >= 0.8 else 'NOT met'}"})  # fmt: skip
        estore = _store(Path(tmp), 4096, 128)
        rows.append({"area": AREA, "metric": "embed img/s cuda resnet18 128px",
                     "value": _embed_rate(estore, gpu, 512, "resnet18"), "unit": "img/s",
                     "note": f"{name}, 4096 x 128 px from Zarr, resized to 224 px, batch 512"})  # fmt: skip
        rows.append({"area": AREA, "metric": "embed img/s cuda resnet18 128px dihedral",
                     "value": _embed_rate(estore, gpu, 512, "resnet18", dihedral=True),
                     "unit": "img/s", "note": f"{name}, as above, mean of 8 views (as "
                                              "pretrained models embed)"})  # fmt: skip
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    import torch

    from insarexplore.models.encoders import PRESETS

    rows: list[dict[str, Any]] = []
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    steps = 5 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        store = _store(Path(tmp), 1024 if quick else 3000, 64)
        for arch in ("resnet-micro", "resnet-tiny"):
            size = min(64, PRESETS[arch]["image_size"])
            tag = f"{arch} {size}px"
            rate = _pipeline(store, arch, 128, steps, cpu, 0)
            rows.append({"area": AREA, "metric": f"pretrain img/s cpu {tag}", "value": rate,
                         "unit": "img/s", "note": f"batch 128, 2 views, {threads} threads, whole loop"})  # fmt: skip
            ceil = _ceiling(arch, size, 128, steps, cpu)
            rows.append({"area": AREA, "metric": f"pretrain ceiling cpu {tag}", "value": ceil,
                         "unit": "img/s", "note": "fwd+bwd+step on random tensors"})  # fmt: skip
            rows.append({"area": AREA, "metric": f"embed img/s cpu {tag}",
                         "value": _embed_rate(store, cpu, arch=arch), "unit": "img/s",
                         "note": "from 64 px Zarr, batch 256, one view"})  # fmt: skip
            rows.append({"area": AREA, "metric": f"embed img/s cpu {tag} dihedral",
                         "value": _embed_rate(store, cpu, arch=arch, dihedral=True),
                         "unit": "img/s", "note": "as pretrained models embed: mean of 8 "
                         "rotations/reflections"})  # fmt: skip
        if torch.cuda.is_available():
            gpu = torch.device("cuda")
            for size in (128, 224):
                gstore = _store(Path(tmp), 2048, size)
                ceil = _ceiling("resnet18", size, 256, steps * 2, gpu)
                rate = _pipeline(gstore, "resnet18", 256, steps * 2, gpu, 6)
                note = (
                    f"pipeline overhead {100 * (1 - rate / ceil):.0f}% of ceiling (target <= 20%)"
                )
                rows.append({"area": AREA, "metric": f"pretrain img/s cuda resnet18 {size}px",
                             "value": rate, "unit": "img/s", "note": note})  # fmt: skip
                rows.append({"area": AREA, "metric": f"pretrain ceiling cuda resnet18 {size}px",
                             "value": ceil, "unit": "img/s", "note": "bf16, channels_last"})  # fmt: skip
            rows.append({"area": AREA, "metric": "embed img/s cuda resnet-tiny 64px",
                         "value": _embed_rate(store, gpu, 1024), "unit": "img/s", "note": "batch 1024"})  # fmt: skip
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--view-cost", action="store_true", help="only the 224/64 px RGB ratio")
    parser.add_argument("--check", action="store_true", help="only gpu_check.sh's rows")
    args = parser.parse_args()
    print(f"{'metric':45s} {'value':>10s} unit   note")
    if args.check:
        rows = check_rows(args.quick)
    elif args.view_cost:
        rows = view_cost(args.quick)
    else:
        rows = run(args.quick) + view_cost(args.quick)
    for r in rows:
        print(f"{r['metric']:45s} {r['value']:10.1f} {r['unit']:6s} {r['note']}")
