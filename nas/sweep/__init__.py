"""Sweeps on Ray Tune: many searches (or any registered trial kind), resumable, local or on a cluster.

``run_sweep("sweep.yaml")`` runs every trial of a sweep file; ``resume_sweep(run_dir)`` finishes one
whose driver stopped. See docs/sweeps.md.
"""

from .config import SweepConfig, load_sweep
from .runner import resume_sweep, run_sweep
from .trials import get_trial_kind, list_trial_kinds, register_trial_kind
from . import train_trial  # noqa: E402,F401  - registers the "train" trial kind

__all__ = ["SweepConfig", "load_sweep", "run_sweep", "resume_sweep", "register_trial_kind", "get_trial_kind",
           "list_trial_kinds"]
