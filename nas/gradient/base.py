"""What the three gradient strategies share: declared parameters and the per-run job they work on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from search_spaces.errors import UserError

from ..strategies.base import Param
from .pricing import LayerCosts
from .found import FoundLayer, FoundNet, assemble
from .supernet import inherit_largest, reduced

# Parameters every training strategy takes (the runner reads them); sizes are the reduced
# configuration: narrow layers on small images (digits upscaled), priced for the full space.
COMMON = {
    "data": Param(str, "digits"),
    "image_size": Param(int, 16, 8, 256),
    "width": Param(float, 0.25, 0.0, 4.0, lo_open=True),
    "head": Param(int, 64, 4, 4096),
    "epochs": Param(int, 6, 1, 10_000),
    "warmup_epochs": Param(int, 2, 0, 10_000),
    # warm-up starts with this many epochs on the largest path alone; then every candidate inherits its slice
    "largest_first_epochs": Param(int, 1, 0, 10_000),
    "finetune_epochs": Param(int, 6, 0, 10_000),
    "batch_size": Param(int, 64, 2, 4096),
    "steps_per_epoch": Param(int, 0, 0, 10**9),  # 0: one pass over the training split
    "crop_scale": Param(float, 0.9, 0.0, 1.0, lo_open=True),  # random-resized crop keeps this much area or more
    "optimizer": Param(str, "adam", choices=("adam", "sgd")),  # of the weights
    "lr": Param(float, 0.005, 0.0, 10.0, lo_open=True),
    "arch_lr": Param(float, 0.05, 0.0, 10.0, lo_open=True),
    "dual_rate": Param(float, 0.5, 0.0, 100.0),
    "fill": Param(float, 0.85, 0.0, 1.0),
    "val_fraction": Param(float, 0.3, 0.0, 1.0, lo_open=True),
    "held_out": Param(float, 0.2, 0.0, 1.0, lo_open=True),
    "checkpoint_steps": Param(int, 10, 1, 10**9),
    # torch intra-op threads (0: torch's default). One: these small-batch 16 px nets gain little from a
    # second thread, and on a busy machine two spinning OpenMP threads stalled a DNAS run several-fold
    "threads": Param(int, 1, 0, 1024),
}


class GradientStrategy:
    """Parameter handling like ``nas.strategies.base.Strategy``; subclasses add their own ``PARAMS``."""

    name = "gradient"
    coefficient_name = "lambda"
    PARAMS: dict[str, Param] = {}

    def __init__(self, **params):
        spec = {**COMMON, **self.PARAMS}
        unknown = sorted(set(params) - set(spec))
        if unknown:
            raise UserError(f"strategy {self.name!r}: unknown parameter {unknown[0]!r}; accepted: "
                            + ", ".join(f"{k} ({p.describe()})" for k, p in spec.items()))
        self._values = {k: p.check(self.name, k, params.get(k, p.default)) for k, p in spec.items()}
        if self._values["warmup_epochs"] >= self._values["epochs"]:
            raise UserError(f"strategy {self.name!r}: warmup_epochs ({self._values['warmup_epochs']}) must be "
                            f"below epochs ({self._values['epochs']}), or no architecture step runs")
        if self._values["largest_first_epochs"] > self._values["warmup_epochs"]:
            raise UserError(f"strategy {self.name!r}: largest_first_epochs ({self._values['largest_first_epochs']}) "
                            f"must be at most warmup_epochs ({self._values['warmup_epochs']})")
        self.validate()

    def validate(self) -> None:
        """Cross-parameter checks of a subclass (one-line UserError)."""

    def params(self) -> dict:
        return dict(self._values)

    def __getattr__(self, k):
        values = self.__dict__.get("_values", {})
        if k in values:
            return values[k]
        raise AttributeError(k)

    def check(self, space, specs) -> None:
        return None

    def initial_coefficient(self) -> float:
        return 1.0

    def found_net(self, job, choice) -> FoundNet:
        """The chosen candidate of every layer of a ``CandidateSupernet``, with its weights."""
        w = self.width
        layers, states = [], []
        for s, ops, c in zip(job.specs, job.model.net.layers, choice):
            cand = s.candidates[int(c)]
            if cand is None:
                layers.append(None)
                states.append({})
                continue
            cin = reduced(s.cin, w)
            layers.append(FoundLayer(cin, reduced(s.cout, w), cin * cand.expand, cand.kernel, s.stride, s.residual,
                                     cand.groups))
            states.append(ops[int(c)].state_dict())
        return assemble(job, layers, states)

    def inherit(self, job, largest) -> None:
        """After the largest-path epochs: every candidate starts from its slice of the largest."""
        inherit_largest(job.model.net, largest)


@dataclass
class TrainJob:
    """One run's objects: the model, optimisers, latency term and the adapted coefficient."""

    specs: list
    costs: LayerCosts
    limit_ms: float
    params: dict
    n_classes: int
    model: torch.nn.Module | None = None
    w_opt: torch.optim.Optimizer | None = None
    a_opt: torch.optim.Optimizer | None = None
    coefficient: float = 1.0
    epoch: int = 0
    scratch: dict = field(default_factory=dict)

    def cost_tensor(self) -> torch.Tensor:
        return torch.as_tensor(np.where(self.costs.mask, self.costs.cost_ms, 0.0), dtype=torch.float32)

    def mask_tensor(self) -> torch.Tensor:
        return torch.as_tensor(self.costs.mask)
