"""The contract of strategies that train a supernet (DNAS, ProxylessNAS, Single-Path NAS).

Ask/tell strategies (``nas.strategies.base.Strategy``) propose archs that an estimator scores;
a *training strategy* instead trains a weight-sharing supernet and its architecture parameters
together and derives one arch from them. ``nas.search`` dispatches on the type: an object that
satisfies ``TrainingStrategy`` runs in ``nas.gradient.runner.train_search``, which owns
everything the two kinds share — the run folder and its refusal to overwrite, ``config.json``,
atomic checkpoints with exact ``--resume``, progress lines, ``result.json`` (a ``SearchResult``),
``best_arch.json`` — and the parts only training needs: data, the train / validation / held-out
split, the latency term from the target's table, the coefficient's update toward the target and
the final projection onto the budget. A strategy supplies only its mathematics:

- ``supernet(job)``: the module holding supernet weights *and* architecture parameters;
- ``weight_step(job, x, y, gen)`` / ``arch_step(job, x, y, gen)``: one optimisation step each
  (``gen``: the torch generator of this step, so runs are deterministic and resume exactly);
- ``probabilities(job)``: (n_layers, n_positions) numpy choice probabilities, for the projection;
- ``path(job, choice)``: what ``forward`` needs to run one arch (fine-tuning, the largest-path warm-up);
- ``inherit(job, largest)``: after the largest-path warm-up, start every candidate from its slice;
- ``found_net(job, choice)``: the chosen arch as a plain ``FoundNet`` with the weights it inherits
  (held-out accuracy, ``found_net.pt``, ``--export``).

All per-run objects live on the ``TrainJob`` the runner passes in; nothing per run is kept on
the strategy, so one instance serves any number of searches.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch


@runtime_checkable
class TrainingStrategy(Protocol):
    name: str
    #: the coefficient of the latency term that the runner adapts toward the target (its name in reports)
    coefficient_name: str

    def params(self) -> dict: ...

    def check(self, space, specs) -> None:
        """Raise UserError when the space lacks the supernet this strategy needs."""

    def supernet(self, job) -> torch.nn.Module: ...

    def weight_step(self, job, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> float: ...

    def arch_step(self, job, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> float: ...

    def probabilities(self, job) -> np.ndarray: ...

    def path(self, job, choice: np.ndarray): ...

    def inherit(self, job, largest: np.ndarray) -> None: ...

    def found_net(self, job, choice: np.ndarray) -> torch.nn.Module: ...
