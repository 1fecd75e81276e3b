"""Each loss against a naive loop-based reference on random inputs."""

from __future__ import annotations

import math

import pytest
import torch

from insarexplore.ssl.losses import MoCoLoss, NTXentLoss, SupConLoss, VICRegLoss


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a @ b) / (a.norm() * b.norm()))


def naive_ntxent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    z = torch.cat([z1, z2]).double()
    n = len(z1)
    total = 0.0
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        denom = sum(math.exp(_cos(z[i], z[k]) / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(_cos(z[i], z[pos]) / t) / denom)
    return total / (2 * n)


def naive_moco(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    total = 0.0
    for i in range(len(q)):
        pos = math.exp(_cos(q[i], k[i]) / t)
        neg = sum(math.exp(_cos(q[i], queue[j]) / t) for j in range(len(queue)))
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def naive_vicreg(z1, z2, sim=25.0, std=25.0, cov=1.0, eps=1e-4) -> float:
    z1, z2 = z1.double(), z2.double()
    n, d = z1.shape
    inv = sum(float((z1[i, j] - z2[i, j]) ** 2) for i in range(n) for j in range(d)) / (n * d)
    var_terms, cov_terms = [], []
    for z in (z1, z2):
        mean = [float(z[:, j].mean()) for j in range(d)]
        hinge = 0.0
        for j in range(d):
            var = sum((float(z[i, j]) - mean[j]) ** 2 for i in range(n)) / (n - 1)
            hinge += max(0.0, 1 - math.sqrt(var + eps))
        var_terms.append(hinge / d)
        c = 0.0
        for a in range(d):
            for b in range(d):
                if a != b:
                    s = sum(
                        (float(z[i, a]) - mean[a]) * (float(z[i, b]) - mean[b]) for i in range(n)
                    )
                    c += (s / (n - 1)) ** 2
        cov_terms.append(c / d)
    return sim * inv + std * sum(var_terms) / 2 + cov * sum(cov_terms)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_ntxent_matches_naive(t):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    assert float(NTXentLoss(t)(z1, z2)) == pytest.approx(naive_ntxent(z1, z2, t), rel=1e-5)


def test_ntxent_identical_views_low_loss_and_gradient():
    z = torch.randn(8, 16, requires_grad=True)
    loss_same = NTXentLoss(0.1)(z, z * 2.0)
    loss_rand = NTXentLoss(0.1)(z, torch.randn(8, 16))
    assert loss_same.item() < loss_rand.item()
    loss_same.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_ntxent_rejects_bad_shapes():
    with pytest.raises(ValueError, match="z1 and z2"):
        NTXentLoss()(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(0.0)


def test_moco_matches_naive_and_updates_queue():
    torch.manual_seed(1)
    loss_fn = MoCoLoss(dim=4, queue_size=7, temperature=0.3)
    q, k = torch.randn(3, 4), torch.randn(3, 4)
    queue = loss_fn.queue.clone()
    assert float(loss_fn(q, k)) == pytest.approx(naive_moco(q, k, queue, 0.3), rel=1e-5)
    kn = torch.nn.functional.normalize(k, dim=1)
    assert torch.allclose(loss_fn.queue[:3], kn) and torch.equal(loss_fn.queue[3:], queue[3:])
    assert int(loss_fn.ptr) == 3
    loss_fn(torch.randn(3, 4), k * 2)
    loss_fn(torch.randn(3, 4), k)  # wraps around: slots 6, 0, 1
    assert int(loss_fn.ptr) == 2
    assert torch.allclose(loss_fn.queue[6], kn[0]) and torch.allclose(loss_fn.queue[0], kn[1])
    loss_fn.eval()
    before = loss_fn.queue.clone()
    loss_fn(q, k)
    assert torch.equal(before, loss_fn.queue)


def test_moco_gradient_only_through_queries():
    q = torch.randn(4, 8, requires_grad=True)
    k = torch.randn(4, 8, requires_grad=True)
    MoCoLoss(dim=8, queue_size=16)(q, k).backward()
    assert q.grad is not None and k.grad is None


def test_vicreg_matches_naive():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(7, 4, generator=g) * 0.5, torch.randn(7, 4, generator=g)
    got = float(VICRegLoss()(z1, z2))
    assert got == pytest.approx(naive_vicreg(z1, z2), rel=1e-5)
    got = float(VICRegLoss(1.0, 2.0, 3.0)(z1, z2))
    assert got == pytest.approx(naive_vicreg(z1, z2, 1.0, 2.0, 3.0), rel=1e-5)


@pytest.mark.parametrize("name", ["ntxent", "moco", "vicreg", "supcon"])
def test_loss_under_bf16_autocast_is_the_fp32_loss(name):
    """Losses compute in float32 even inside bf16 autocast (their matmuls included)."""
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(64, 128, generator=g), torch.randn(64, 128, generator=g)
    if name == "supcon":  # labels in place of the second view
        z2 = torch.randint(0, 6, (64,), generator=g)
        loss = SupConLoss(0.1)
    elif name == "ntxent":
        loss = NTXentLoss(0.1)
    elif name == "moco":
        loss = MoCoLoss(128, 256, 0.1).eval()
    else:
        loss = VICRegLoss()
    ref = loss(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(z1, z2)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(ref), rel=1e-5, abs=1e-5)


def naive_supcon(z, y, t):
    z = [v / math.sqrt(sum(float(a) ** 2 for a in v)) for v in z]
    sim = [[sum(float(a) * float(b) for a, b in zip(u, v)) / t for v in z] for u in z]
    terms = []
    for i in range(len(z)):
        denom = sum(math.exp(sim[i][k]) for k in range(len(z)) if k != i)
        pos = [p for p in range(len(z)) if p != i and int(y[p]) == int(y[i])]
        if pos:
            terms.append(-sum(math.log(math.exp(sim[i][p]) / denom) for p in pos) / len(pos))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_supcon_matches_naive_and_skips_samples_alone_in_their_class(t):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(9, 5, generator=g)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 0, 3, 1])  # classes 2 and 3 have one sample each
    assert float(SupConLoss(t)(z, y)) == pytest.approx(naive_supcon(z, y, t), rel=1e-5)


def test_supcon_is_low_when_classes_are_gathered_and_refuses_bad_input():
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    gathered = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]] * 3)
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 3)
    loss = SupConLoss(0.1)
    assert float(loss(gathered, y)) < float(loss(mixed, y)) - 1
    alone = torch.randn(3, 4, requires_grad=True)
    out = loss(alone, torch.tensor([0, 1, 2]))  # nobody has a positive: 0, still differentiable
    out.backward()
    assert float(out.detach()) == 0.0
    with pytest.raises(ValueError, match="y"):
        loss(torch.randn(4, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="temperature"):
        SupConLoss(0.0)
