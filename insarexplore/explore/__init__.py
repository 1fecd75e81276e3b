"""The engine under the dashboard: projection, clusters, labels, few-shot, active learning.

Names are imported lazily so that ``import insarexplore.explore`` stays cheap (UMAP, numba and
scikit-learn load only when used).
"""

from __future__ import annotations

from insarexplore._lazy import lazy_exports

_LAZY = {
    # labels
    "LabelStore": "insarexplore.explore.labels",
    "UnknownSampleError": "insarexplore.explore.labels",
    "export_csv": "insarexplore.explore.labelio",
    "import_csv": "insarexplore.explore.labelio",
    "export_geojson": "insarexplore.explore.labelio",
    "import_geojson": "insarexplore.explore.labelio",
    "export_hephaestus": "insarexplore.explore.labelio",
    "import_hephaestus": "insarexplore.explore.labelio",
    # projection and clusters
    "Projector": "insarexplore.explore.projection",
    "project": "insarexplore.explore.projection",
    "ClusterResult": "insarexplore.explore.clusters",
    "find_clusters": "insarexplore.explore.clusters",
    "cluster": "insarexplore.explore.clusters",
    # few-shot
    "FewShotClassifier": "insarexplore.explore.fewshot",
    "Predictions": "insarexplore.explore.fewshot",
    "train_fewshot": "insarexplore.explore.fewshot",
    "load_predictions": "insarexplore.explore.fewshot",
    "FinetuneResult": "insarexplore.explore.finetune",
    "finetune_encoder": "insarexplore.explore.finetune",
    "finetune_workspace": "insarexplore.explore.finetune",
    # active learning, anomalies, splits
    "Suggestion": "insarexplore.explore.active",
    "suggest": "insarexplore.explore.active",
    "suggest_workspace": "insarexplore.explore.workspace_suggest",
    "k_center_greedy": "insarexplore.explore.active",
    "knn_scores": "insarexplore.explore.anomaly",
    "isolation_forest_scores": "insarexplore.explore.anomaly",
    "rank_anomalies": "insarexplore.explore.anomaly",
    "anomaly_scores": "insarexplore.explore.anomaly",
    "deformation_scores": "insarexplore.explore.deformation",
    "leakage_components": "insarexplore.explore.splits",
    "group_train_test_split": "insarexplore.explore.splits",
    "group_kfold": "insarexplore.explore.splits",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
