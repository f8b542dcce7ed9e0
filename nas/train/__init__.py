"""Supernet training: data, plans (progressive shrinking, sandwich rule), the step, checkpoints, Ray.

``train_supernet(make_config(...), out)`` trains on one machine; ``nas.train.distributed`` runs
the same trainer on Ray Train workers. See docs/training.md.
"""

from .config import TrainConfig, make_config
from .plans import Phase, Plan, load_plan, scale_epochs
from .step import StepOptions, supernet_step
from .trainer import Stopped, Trainer, train_supernet

__all__ = ["TrainConfig", "make_config", "Phase", "Plan", "load_plan", "scale_epochs", "StepOptions",
           "supernet_step", "Stopped", "Trainer", "train_supernet"]
