"""The ``train`` trial kind: one supernet training run per trial, so a sweep can grid plans and seeds.

Settings are those of ``nas train`` (``nas.train.TrainConfig``); the run lives in the trial's
``train/`` folder and resumes from its checkpoint when Tune restarts the trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from nas.train.config import TrainConfig

from .trials import register_trial_kind

RUN_FOLDER = "train"


@register_trial_kind("train", TrainConfig, done_file=f"{RUN_FOLDER}/result.json",
                     columns=("held_out_top1_largest", "held_out_top1_smallest", "train_wall_s"))
def run_train_trial(params: dict, work_dir: Path, report: Callable[[dict], None]) -> dict:
    from nas.train import train_supernet

    cfg = TrainConfig.model_validate(params)
    out = Path(work_dir) / RUN_FOLDER

    def on_epoch(path, rec):
        report({k: v for k, v in rec.items() if isinstance(v, (int, float))})

    summary = train_supernet(cfg, out, resume=True, quiet=True, on_epoch=on_epoch)
    return {k: summary.get(k) for k in ("held_out_top1_largest", "held_out_top1_smallest", "train_wall_s",
                                        "epochs", "plan")}
