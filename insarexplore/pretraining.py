"""Pretraining in a workspace: the workspace part around the workspace-free loop.

``pretrain_workspace(ws, config)`` picks the model folder (the unfinished run of the same
configuration, to resume it, or a new one), runs ``insarexplore.ssl.train.train`` on the
workspace's data with the data fingerprint recorded, and makes the result the current model.
Under torchrun rank 0 chooses the folder and every rank trains into it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from insarexplore.ssl import dist
from insarexplore.ssl.checkpoint import find_resumable
from insarexplore.ssl.train import PretrainConfig, data_source, run_key, setup_device, train

__all__ = ["PretrainConfig", "pretrain_workspace"]


def pretrain_workspace(
    ws: Any, config: PretrainConfig | None = None, *, on_step: Any = None
) -> str:
    """Pretrain on a workspace (a ``Workspace`` or its path); returns the new model version."""
    from insarexplore.workspace import Workspace

    ws = ws if isinstance(ws, Workspace) else Workspace.open(ws)
    cfg = config or PretrainConfig()
    setup_device(cfg.device)  # the process group counts ranks for the resume key
    data = data_source(ws)
    choice: list[Any] = [None, None]
    fresh = False
    if dist.is_main_process():
        run = find_resumable(ws.models_dir, run_key(data, cfg)) if cfg.resume else None
        if run is None:
            version, run = ws.new_model_dir(f"{cfg.method}-{cfg.arch}")
            fresh = True
        choice = [run.name, str(run)]
    version, run_dir = dist.broadcast_object(choice)
    try:
        train(data, cfg, Path(run_dir), version=version,
              meta_extra={"data_fingerprint": ws.data_fingerprint()}, on_step=on_step)  # fmt: skip
    except BaseException:
        run = Path(run_dir)
        if fresh and not any((run / f).exists() for f in ("checkpoint.pt", "encoder.pt")):
            shutil.rmtree(run, ignore_errors=True)  # nothing to resume: no empty run left behind
        raise
    if dist.is_main_process():
        ws.set_current_model(version)
    dist.barrier()
    return version
