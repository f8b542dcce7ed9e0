"""The settings of one supernet training run (validated at the edge, stored in every checkpoint)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from search_spaces.errors import UserError

from ..fields import PositiveFloat, PositiveInt


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    space: str = "ofa-small"
    data: str = "digits"
    plan: str = "progressive"        # progressive | sandwich | PATH.yaml
    epochs: PositiveInt = 30
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-5
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0
    kd_weight: float = 1.0
    dropout: float = 0.1
    held_out: float = 0.2             # fraction of the data held out (stratified, fixed by seed)
    image_size: int | None = None     # storage size of an ImageFolder's images (default 64)
    resolution: int | None = None     # input size for spaces without a resolution choice (single_path)
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: bool = False
    seed: int = 0
    calib_batches: PositiveInt = 4            # BatchNorm re-calibration batches before each evaluation
    eval_every: PositiveInt = 1               # evaluate largest/smallest every N epochs (and at the end)
    amp: bool = True                  # mixed precision on CUDA (no effect on CPU)
    device: str = "auto"              # auto | cpu | cuda

    @field_validator("crop_scale")
    @classmethod
    def _scale(cls, v):
        if not 0 < v[0] <= v[1] <= 1:
            raise ValueError(f"must be 0 < lo <= hi <= 1, got {v}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        if v not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {v!r}; accepted: auto, cpu, cuda")
        return v


def make_config(**kw) -> TrainConfig:
    try:
        return TrainConfig.model_validate(kw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise UserError(f"training setting {loc}: {err['msg'].removeprefix('Value error, ')}") from None
