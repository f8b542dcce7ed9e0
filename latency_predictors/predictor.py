"""LatencyPredictor: a device's table for one space compiled into an array, summed over archs at once.

Compiling maps every block the space can contain (``space.block_keys()``, all resolutions) to its
latency once; predicting is then a gather and a row sum over ``space.block_matrix(X)``, in chunks
that stay in cache. No dict look-up happens per arch.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from search_spaces.base import Arch, LayerPriced, SearchSpace, describe_allowed
from search_spaces.cell_priced import CellPriced
from search_spaces.errors import UserError
from search_spaces.registry import get_space

from .hostcheck import host_differences, warn_if_other_host
from .profile import DeviceProfile, LayerTable, SpaceTable
from .registry import get_profile

# Rows per chunk: the (chunk, max_blocks) index and value arrays fit in L2, which makes the
# whole batch ~2x faster than materialising one (n, max_blocks) matrix.
CHUNK_ROWS = 1 << 14


@runtime_checkable
class LatencyModel(Protocol):
    """Anything that prices an encoded arch matrix: ``predict(X) -> ms`` per row (a search target)."""

    def predict(self, X: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class ReportsPricing(Protocol):
    """A latency model that can say how it priced the archs it was asked about (a search's result records it).

    ``pricing_report(top_X)``: a JSON-able dict (or None when it has nothing to report), with the
    1-based ranks of ``top_X``'s rows it priced by a fallback under ``top_k_priced_additive``.
    """

    def pricing_report(self, top_X: np.ndarray | None = None) -> dict | None: ...


def profile_command(device: str, space: str) -> str:
    """The command that measures a device's missing blocks for a space."""
    return f"nas profile --device {device} --space {space}"


def compile_table(table: SpaceTable, space: SearchSpace) -> np.ndarray:
    """Latency (ms) of every block in ``space.block_keys()`` order; NaN where the table has none.

    Resolution-free ``entries`` apply to any block with that key; a ``by_resolution`` section
    overrides them for the blocks of networks at that input resolution.
    """
    keys = [str(k) for k in space.block_keys()]
    values = np.full(len(keys), np.nan)
    if table.entries:
        values[:] = [table.entries.get(k, np.nan) for k in keys]
    for r, section in sorted(table.by_resolution.items()):
        try:
            ids = space.searched_block_ids(resolutions=[r])
        except TypeError:
            raise UserError(f"space {space.name!r} has no input resolutions, but its table has a section "
                            f"for resolution {r}") from None
        # searched_block_ids raises UserError for a resolution the space does not allow.
        found = np.array([section.get(keys[i], np.nan) for i in ids])
        hit = ~np.isnan(found)
        values[ids[hit]] = found[hit]
    return values


class LatencyPredictor:
    """Predicts a space's latency on one device from the device profile's table.

    ``predict(archs)`` takes an encoded matrix ``(n, n_dims)`` (from ``space.encode`` or
    ``space.sample_encoded``) or a list of arch dicts, and returns milliseconds as float64.
    ``source`` says how the numbers were obtained: measured, modelled or imported.
    """

    def __init__(self, profile: DeviceProfile | str, space: SearchSpace | str, pricing: str = "auto",
                 host_status=None, check_host: bool = True):
        self.profile = get_profile(profile)
        # What was done about a profile from another host (host_calibration.resolve_for_host), for results.
        self.host_status = host_status
        if host_status is None and check_host:
            warn_if_other_host(self.profile)  # a measured table says little about another machine
        self.space = get_space(space)
        if pricing not in ("auto", "blocks"):
            raise UserError(f"pricing must be 'auto' or 'blocks', got {pricing!r}")
        # Graph spaces are priced by whole cells where the profile can ("blocks": their per-op sum).
        self.cells_ = None
        self.table_name = self.space.name
        if pricing == "auto" and isinstance(self.space, CellPriced):
            from .cells import cell_latency

            self.cells_ = cell_latency(self.profile, self.space,
                                       additive=lambda profile: LatencyPredictor(profile, self.space, pricing="blocks",
                                                                                 check_host=False))
            if self.cells_ is not None:
                self.source, self.provenance = self.cells_.source, self.cells_.provenance
                self.scale_, self.offset_ms_ = self.cells_.scale_, self.cells_.offset_ms_
                self.table_name = self.cells_.table_name
                return
        table = self.profile.table(self.space.name)
        device = self.profile.name
        self.layers_: LayerLatency | None = None  # set when the table is per layer (Single-Path NAS)
        src = self.profile.source_of(self.space.name)
        cal = self.profile.calibration_of(self.space.name)
        self.source = src.kind
        self.provenance = src.provenance
        if table is None:
            # A modelled profile prices any space with blocks through its own cost model.
            self.table_ms_ = _cost_model_table(self.profile, self.space)
            if self.table_ms_ is None:
                covered = ", ".join(sorted(self.profile.tables)) or "none"
                raise UserError(f"device {device!r} has no latency table for space {self.space.name!r} "
                                f"(it covers: {covered}); measure one with: "
                                f"{profile_command(device, self.space.name)}")
            self.provenance = (f"{src.provenance}; the blocks of space {self.space.name!r} are priced by "
                               f"the profile's cost model when loaded")
        elif not table.entries and not table.by_resolution:
            self.layers_ = _layer_latency(table, self.space, device)
            self.table_ms_ = np.zeros(0)
        else:
            self.table_ms_ = compile_table(table, self.space)
        # Blocks the table lacks (another resolution, a released net's own widths) are priced by
        # the profile's cost model when it carries one; those archs are labelled modelled.
        self.modelled_ = np.zeros(len(self.table_ms_), dtype=bool)
        if table is not None and self.layers_ is None:
            self._fill_from_cost_model()
        self.scale_ = float(cal.scale)
        self.offset_ms_ = float(cal.offset_ms)
        # Index -1 (an inactive slot) lands on this trailing zero.
        self._padded_ms = np.append(self.table_ms_, 0.0)

    def _fill_from_cost_model(self) -> None:
        missing = np.flatnonzero(np.isnan(self.table_ms_))
        if not len(missing) or self.profile.fit is None or not self.profile.fit.model:
            return
        # The cost model itself, not fit_device: that module pulls in scipy for fitting (seconds to import).
        from .cost_model import OperatorCostModel

        keys = self.space.block_keys()
        model = OperatorCostModel.from_dict(self.profile.fit.model)
        self.table_ms_[missing] = model.predict_blocks([keys[i] for i in missing])
        self.modelled_[missing] = True
        self.provenance = (f"{self.provenance}; blocks its table lacks are priced by the profile's cost model "
                           f"(modelled)")

    def modelled_rows(self, archs) -> np.ndarray:
        """Per arch: True when a block of it was priced by the cost model, not the table."""
        X = self._encoded(archs)
        if self.layers_ is not None or not self.modelled_.any():
            return np.zeros(len(X), dtype=bool)
        padded = np.append(self.modelled_, False)
        return np.concatenate([padded[self.space.block_matrix(X[i:i + CHUNK_ROWS])].any(axis=1)
                               for i in range(0, len(X), CHUNK_ROWS)]) if len(X) else np.zeros(0, bool)

    def source_of_rows(self, archs) -> list[str]:
        """Each arch's latency source: the table's (measured, imported, modelled) or "modelled"."""
        return ["modelled" if m else self.source for m in self.modelled_rows(archs)]

    # ---- coverage -------------------------------------------------------------------------
    def missing_block_ids(self, block_ids: np.ndarray | None = None) -> np.ndarray:
        """Blocks (indices into ``space.block_keys()``) without a latency, among ``block_ids``."""
        if self.cells_ is not None or self.layers_ is not None:
            return np.zeros(0, dtype=np.int64)  # a per-layer table prices every choice
        ids = self.space.searched_block_ids() if block_ids is None else np.asarray(block_ids)
        return ids[np.isnan(self.table_ms_[ids])]

    def coverage(self) -> float:
        """Fraction of the blocks that searched archs can reach which the table prices."""
        if self.cells_ is not None or self.layers_ is not None:
            return 1.0  # whole cells are measured on demand; a per-layer table prices every choice
        ids = self.space.searched_block_ids()
        return float(1.0 - len(self.missing_block_ids(ids)) / len(ids))

    # ---- prediction -----------------------------------------------------------------------
    def _encoded(self, archs) -> np.ndarray:
        if isinstance(archs, np.ndarray):
            if archs.ndim != 2 or archs.shape[1] != len(self.space.dims):
                raise UserError(f"expected an encoded matrix of shape (n, {len(self.space.dims)}) for space "
                                f"{self.space.name!r}, got {archs.shape}")
            return archs
        return self.space.encode(archs)

    def block_sum_ms(self, archs: np.ndarray | Sequence[Arch] | Arch, missing: str = "raise") -> np.ndarray:
        """Sum of the table over each arch's blocks, before calibration (see ``predict`` for ``missing``)."""
        if missing not in ("raise", "nan"):
            raise UserError(f"missing must be 'raise' or 'nan', got {missing!r}")
        X = self._encoded(archs)
        if self.cells_ is not None:
            return self.cells_.block_sum_ms(X, missing)
        out = np.empty(len(X))
        if self.layers_ is not None:
            for start in range(0, len(X), CHUNK_ROWS):
                out[start:start + CHUNK_ROWS] = self.layers_.predict(self.space.layer_choices(X[start:start + CHUNK_ROWS]))
            return out
        for start in range(0, len(X), CHUNK_ROWS):
            ids = self.space.block_matrix(X[start:start + CHUNK_ROWS])
            out[start:start + CHUNK_ROWS] = self._padded_ms[ids].sum(axis=1)
        if missing == "nan":
            return out
        bad = np.flatnonzero(np.isnan(out))
        if len(bad):
            self._raise_missing(X[bad[0]:bad[0] + 1], len(bad))
        return out

    def predict(self, archs: np.ndarray | Sequence[Arch] | Arch, missing: str = "raise") -> np.ndarray:
        """Latency in ms of each arch: ``scale * sum(blocks) + offset_ms``.

        An arch with a block the table lacks raises a UserError naming the block (``missing="raise"``),
        or gets NaN (``missing="nan"``: a search can then steer away from what the table cannot price).
        """
        if self.cells_ is not None:
            return self.cells_.predict(self._encoded(archs), missing)
        out = self.block_sum_ms(archs, missing)
        if self.scale_ != 1.0:
            out *= self.scale_
        if self.offset_ms_ != 0.0:
            out += self.offset_ms_
        return out

    __call__ = predict

    def pricing_report(self, top_X: np.ndarray | None = None) -> dict | None:
        """How whole-cell pricing priced this predictor's archs (``ReportsPricing``); None for block sums."""
        if self.cells_ is None:
            return None
        out = self.cells_.pricing_report()
        if top_X is not None and len(top_X):
            out["top_k_priced_additive"] = [int(i) + 1 for i in np.flatnonzero(self.cells_.priced_additively(top_X))]
        return out

    def _raise_missing(self, row: np.ndarray, n_bad: int):
        ids = self.space.block_matrix(row)[0]
        ids = ids[ids >= 0]
        missing = ids[np.isnan(self.table_ms_[ids])]
        key = self.space.block_keys()[missing[0]]
        r = int(self.space.resolution(row)[0]) if _has_resolution_dim(self.space) else None
        at = f" at resolution {r}" if r is not None else ""
        k = len(missing) - 1
        others = (f" (+{k} more block{'s' * (k != 1)} in this arch; {n_bad} arch{'s' * (n_bad != 1)} affected)"
                  if k or n_bad > 1 else "")
        raise UserError(f"device {self.profile.name!r} has no latency for block {key}{at} in space "
                        f"{self.space.name!r}{others}; {self._how_to_add(r)}")

    def covered_resolutions(self) -> list[int] | None:
        """The input resolutions at which the table prices every searched block; None without a resolution dim."""
        if not _has_resolution_dim(self.space):
            return None
        rdim = self.space.dims[-1]
        out = []
        for r in rdim.choices:
            try:
                ids = self.space.searched_block_ids(resolutions=[r])
            except (TypeError, UserError):
                return None
            if len(ids) and not np.isnan(self.table_ms_[ids]).any():
                out.append(int(r))
        return out

    def _how_to_add(self, r: int | None) -> str:
        """What the user can do about a missing block, by how the profile's numbers were obtained."""
        device, space = self.profile.name, self.space.name
        covered = self.covered_resolutions() if r is not None else None
        has = f"its {space} table covers resolutions {describe_allowed(covered)}; " if covered else ""
        kind = self.profile.source_of(space).kind
        if kind == "measured" and self.profile.runtime.engine in ("onnxruntime", "torch", None):
            res = f" --resolutions {r}" if r is not None else ""
            # nas profile refuses to extend a profile measured on another machine.
            where = ("on the machine it was measured on (not this one) "
                     if self.profile.host is not None and host_differences(self.profile.host) else "")
            return f"{has}measure it {where}with: {profile_command(device, space)}{res}"
        # An imported (or modelled) profile cannot be extended by measuring here: nas profile refuses it.
        what = {"imported": "imported from published tables",
                "modelled": "modelled without a cost model for these blocks"}.get(kind, kind)
        return (f"{has}its numbers are {what}, so `nas profile` cannot add it; price this arch on a device "
                f"that covers it (see nas devices), or import a table that has it")


def _has_resolution_dim(space: SearchSpace) -> bool:
    dims = space.dims
    return bool(dims) and dims[-1].name == "r"


class LayerLatency:
    """A per-layer table (``LayerTable``) compiled to ``(n_layers, n_options + 1)``; the last column is skip.

    ``predict(choices)`` takes ``(n, n_layers)`` option indices, ``len(options)`` meaning skip.
    """

    def __init__(self, table: LayerTable):
        self.options = list(table.options)
        self.skip = len(self.options)
        ms = np.asarray(table.ms, dtype=np.float64)
        self.table_ms_ = np.concatenate([ms, np.full((len(ms), 1), table.skip_ms)], axis=1)

    @property
    def n_layers(self) -> int:
        return self.table_ms_.shape[0]

    def predict(self, choices) -> np.ndarray:
        C = np.atleast_2d(np.asarray(choices))
        if C.shape[1] != self.n_layers or C.min() < 0 or C.max() > self.skip:
            raise UserError(f"layer choices must be (n, {self.n_layers}) ints in 0..{self.skip} "
                            f"({', '.join(self.options)}, {self.skip} = skip)")
        return self.table_ms_[np.arange(self.n_layers)[None, :], C].sum(axis=1)


def _cost_model_table(profile: DeviceProfile, space: SearchSpace) -> np.ndarray | None:
    """Latency of every block of ``space`` from a modelled profile's cost model; None without one."""
    if profile.fit is None or not profile.fit.model:
        return None
    try:
        keys = space.block_keys()
    except NotImplementedError:
        return None
    from .cost_model import OperatorCostModel

    return np.asarray(OperatorCostModel.from_dict(profile.fit.model).predict_blocks(keys), dtype=np.float64)


def _layer_latency(table: SpaceTable, space: SearchSpace, device: str) -> LayerLatency:
    """A per-layer table as a ``LayerLatency`` whose columns follow the space's ``layer_options``."""
    layers = table.layers
    options = list(space.layer_options) if isinstance(space, LayerPriced) else []
    if layers is None or not options:
        raise UserError(f"device {device!r}'s table for space {space.name!r} is per layer, but the space "
                        f"does not map its archs to layer choices (layer_options / layer_choices)")
    if sorted(options) != sorted(layers.options):
        raise UserError(f"device {device!r}'s per-layer table for space {space.name!r} has options "
                        f"{', '.join(layers.options)}; the space's are {', '.join(options)}")
    n_layers = space.layer_choices(space.sample_encoded(np.random.default_rng(0), 1)).shape[1]
    if len(layers.ms) != n_layers:
        raise UserError(f"device {device!r}'s per-layer table for space {space.name!r} has {len(layers.ms)} "
                        f"layers; the space has {n_layers}")
    perm = [layers.options.index(o) for o in options]
    ms = np.asarray(layers.ms, dtype=np.float64)[:, perm]
    return LayerLatency(LayerTable(options=options, ms=ms.tolist(), skip_ms=layers.skip_ms))


def predict_latency_ms(space: SearchSpace | str, device: DeviceProfile | str,
                       archs: np.ndarray | Sequence[Arch] | Arch) -> np.ndarray:
    """One-shot prediction; build a ``LatencyPredictor`` once to score many batches."""
    return LatencyPredictor(device, space).predict(archs)
