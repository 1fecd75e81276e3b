"""Online representation monitor: kNN and linear-probe accuracy on a small labelled split.

During pretraining no label is used for learning; when the data carries labels (``label`` not
"") a few hundred labelled samples are held here, embedded every N steps with the current
encoder, and scored, so the user sees the representation improve.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["Monitor", "knn_accuracy", "probe_accuracy", "encode_array"]


@torch.no_grad()
def encode_array(
    encoder: nn.Module, x: np.ndarray | torch.Tensor, device: torch.device, batch_size: int = 256
) -> np.ndarray:
    """Pooled features of an in-memory ``(n, C, H, W)`` batch, in eval mode, as float32."""
    was_training = encoder.training
    encoder.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size]).to(device, torch.float32)
        out.append(encoder(xb).float().cpu())
    encoder.train(was_training)
    return torch.cat(out).numpy()


def knn_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, k: int = 10
) -> float:
    """Accuracy of a cosine-similarity majority vote among the ``k`` nearest training points."""
    a = train_x / np.maximum(np.linalg.norm(train_x, axis=1, keepdims=True), 1e-12)
    b = test_x / np.maximum(np.linalg.norm(test_x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(a))
    nn_idx = np.argsort(-(b @ a.T), axis=1)[:, :k]
    classes, train_codes = np.unique(train_y, return_inverse=True)
    votes = np.zeros((len(b), len(classes)))
    np.add.at(votes, (np.arange(len(b))[:, None], train_codes[nn_idx]), 1.0)
    return float(np.mean(classes[votes.argmax(axis=1)] == test_y))


def probe_accuracy(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray
) -> float:
    """Accuracy of a logistic-regression probe on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.5))
    clf.fit(train_x, train_y)
    return float(clf.score(test_x, test_y))


class Monitor:
    """Holds a stratified labelled split (``max_samples`` at most) and scores an encoder.

    Built with ``Monitor.from_dataset(ds, kind)``; ``None`` when fewer than two classes with at
    least two samples each are labelled.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        train = np.zeros(len(y), dtype=bool)
        for c in np.unique(y):  # half of each class trains, half tests
            idx = rng.permutation(np.flatnonzero(y == c))
            train[idx[: len(idx) // 2]] = True
        self.x, self.y, self.train = x, y, train

    @classmethod
    def from_dataset(cls, ds, kind: str, max_samples: int = 600, seed: int = 0) -> Monitor | None:
        if "label" not in ds.coords and "label" not in ds:
            return None
        labels = np.asarray(ds["label"].values).astype(str)
        labelled = np.flatnonzero(labels != "")
        classes, counts = np.unique(labels[labelled], return_counts=True)
        if (counts >= 2).sum() < 2:
            return None
        rng = np.random.default_rng(seed)
        per_class = max(2, max_samples // len(classes))
        take = []
        for c in classes[counts >= 2]:
            idx = labelled[labels[labelled] == c]
            take.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
        sel = np.sort(np.concatenate(take))
        x = ds.isel(sample=sel).insar.to_channels(kind)
        return cls(x, labels[sel], seed)

    def evaluate(self, encoder: nn.Module, device: torch.device) -> dict[str, float]:
        feats = encode_array(encoder, self.x, device)
        tr, te = self.train, ~self.train
        return {
            "knn_acc": knn_accuracy(feats[tr], self.y[tr], feats[te], self.y[te]),
            "probe_acc": probe_accuracy(feats[tr], self.y[tr], feats[te], self.y[te]),
        }
