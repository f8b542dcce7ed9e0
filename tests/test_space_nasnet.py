"""The nasnet cell space: NASNet-A, canonical graphs, graph-respecting variation, whole-cell pricing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latency_predictors import LatencyPredictor
from search_spaces import InvalidArchError, get_space
from search_spaces.cell_priced import CellPriced
from search_spaces.nasnet import NASNetSpace
from search_spaces.nasnet.published import PUBLISHED_MACS_M, PUBLISHED_PARAMS_M

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def space():
    return get_space("nasnet")


def test_nasnet_a_mobile_matches_the_paper(space):
    arch = space.published("nasnet-a-mobile")
    X = space.encode([arch])
    macs, params = space.macs(X)[0], space.params(X)[0]
    assert macs / 1e6 == pytest.approx(PUBLISHED_MACS_M["nasnet-a-mobile"], rel=0.05)
    assert params / 1e6 == pytest.approx(PUBLISHED_PARAMS_M["nasnet-a-mobile"], rel=0.05)
    assert space.head_channels(int(space.n_concat(X)[0][0])) == 1056  # "4 @ 1056"
    with pytest.raises(Exception, match="known: nasnet-a-mobile"):
        space.published("nasnet-b")


def _relabel(arch: dict, cell: str, order: list[int]) -> dict:
    """The same cell with its blocks renumbered (order[j] = old block placed at j) and pairs swapped."""
    pos = {old: new for new, old in enumerate(order)}
    ren = lambda i: i if i < 2 else 2 + pos[i - 2]  # noqa: E731
    blocks = [arch[cell][old] for old in order]
    blocks = [[ren(ib), ob, ren(ia), oa] for ia, oa, ib, ob in blocks]  # and each pair the other way round
    out = {**arch, cell: blocks}
    key = f"{cell}_concat_extra"
    if arch.get(key, "none").startswith("b"):
        out[key] = f"b{pos[int(arch[key][1:])]}"
    return out


def test_same_graph_written_differently_gets_the_same_key(space):
    arch = space.published("nasnet-a-mobile")
    # NASNet-A's reduction cell: blocks 0-2 read only the cell inputs, so any order of them is the same graph.
    same = _relabel(_relabel(arch, "reduce", [2, 0, 1, 3, 4]), "normal", [4, 3, 2, 1, 0])
    assert same != arch
    assert space.key(same) == space.key(arch)
    X, Y = space.encode([arch]), space.encode([same])
    assert np.array_equal(X, Y)
    assert [str(k) for k in space.cell_units(X[0])] == [str(k) for k in space.cell_units(Y[0])]
    # A different graph gets a different key: one op changed.
    other = json.loads(json.dumps(arch))
    other["normal"][0][1] = "max_pool_3x3" if other["normal"][0][1] != "max_pool_3x3" else "conv_1x1"
    assert space.key(other) != space.key(arch)


def test_random_relabelings_are_canonicalised(space):
    rng = np.random.default_rng(3)
    X = space.sample_encoded(rng, 200)
    for arch in space.decode(X[:40]):
        order = [int(v) for v in rng.permutation(5)]
        # Keep only valid orders: every block placed after the blocks it reads.
        placed, ok = set(), True
        for old in order:
            reads = {i - 2 for i in (arch["normal"][old][0], arch["normal"][old][2]) if i >= 2}
            ok &= reads <= placed
            placed.add(old)
        if ok:
            assert space.key(_relabel(arch, "normal", order)) == space.key(arch)


def test_a_mutated_cell_is_always_valid(space):
    rng = np.random.default_rng(0)
    X = space.sample_encoded(rng, 500)
    M = space.mutate_once(X, rng)
    assert np.array_equal(space.canonical(M), M)
    for arch in space.decode(M):
        assert space.validate(arch) == arch
        for cell in ("normal", "reduce"):
            for b, (ia, _, ib, _) in enumerate(arch[cell]):
                assert 0 <= ia < 2 + b and 0 <= ib < 2 + b  # a block reads only earlier states
    # One edit changes the graph (up to the rare edit that yields an isomorphic cell).
    assert (M != X).any(axis=1).mean() > 0.95
    C = space.crossover_encoded(X[:250], X[250:], rng)
    for arch in space.decode(C):
        assert space.validate(arch) == arch
    assert np.array_equal(space.mutate_encoded(X, rng, 0.0), X)


def test_invalid_archs_are_one_line_errors(space):
    arch = space.published("nasnet-a-mobile")
    with pytest.raises(InvalidArchError, match="reduce_concat_extra"):
        space.validate({**arch, "reduce_concat_extra": "h0"})
    with pytest.raises(InvalidArchError, match=r"normal\[0\]"):
        space.validate({**arch, "normal": [[0, "sep_conv_3x3"]] + arch["normal"][1:]})
    bad = json.loads(json.dumps(arch))
    bad["normal"][0][0] = 2  # block 0 cannot read block 0
    with pytest.raises(InvalidArchError, match="allowed"):
        space.validate(bad)


def test_pixel1_prices_cells_through_its_operator_costs(space):
    pred = LatencyPredictor("pixel1", space)
    assert pred.cells_ is None and pred.source == "modelled"
    X = space.encode([space.published("nasnet-a-mobile")])
    ms = pred.predict(X)[0]
    assert 100 < ms < 400  # the MnasNet paper measured NASNet-A at 183 ms on a Pixel 1
    assert isinstance(space, CellPriced)


SMALL = "from search_spaces.nasnet import NASNetSpace; sp = NASNetSpace(n_normal=1, filters=8, image_size=48); sp.name = 'nasnet'"
CHILD = f"""
import numpy as np, sys
{SMALL}
from latency_predictors import LatencyPredictor
from latency_predictors.timing import RoundPlan
p = LatencyPredictor('x86', sp)
p.cells_.plan = RoundPlan(rounds=4, reps=3, warmup=1)
X = sp.sample_encoded(np.random.default_rng(0), 3)
p.cells_.progress = False
# The kill lands right after the first round is saved, whatever the machine's load: a kill timed
# from the parent could come after the last round on a fast or starved run.
import os, signal
from latency_predictors import profiler
real_save = profiler.save_progress
def save_then_die(path, state):
    real_save(path, state)
    os.kill(os.getpid(), signal.SIGKILL)
profiler.save_progress = save_then_die
p.cells_.measure_missing(X)
"""


def test_kill_during_cell_profiling_then_resume_measures_nothing_twice(device_dir, tmp_path):
    env = {**os.environ, "HWNAS_DEVICE_DIR": str(device_dir), "PYTHONWARNINGS": "ignore"}
    progress = device_dir / "x86-2core-ort.progress" / "nasnet.cells.json"
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    try:
        child.wait(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, "the child was to die by SIGKILL after its first saved round"
    before = json.loads(progress.read_text())["blocks"]
    assert before, "the killed run saved no round"

    from latency_predictors import cells as cells_mod
    from latency_predictors.timing import RoundPlan

    calls: dict[str, int] = {}
    real_init = cells_mod.UnitTimer.__init__
    sp = NASNetSpace(n_normal=1, filters=8, image_size=48)
    sp.name = "nasnet"
    pred = LatencyPredictor("x86", sp)
    pred.cells_.plan = RoundPlan(rounds=4, reps=3, warmup=1)
    pred.cells_.progress = False
    X = sp.sample_encoded(np.random.default_rng(0), 3)
    keys = {str(k) for k in pred.cells_.missing_units(X)} | set(before)
    assert len(before) < len(keys) or any(len(b["rounds"]) < 4 for b in before.values())  # killed mid-way
    real_time = cells_mod.UnitTimer.time_ms
    real_build = sp.build_unit

    def build_unit(key):
        module, shapes = real_build(key)
        module._hwnas_key = str(key)
        return module, shapes

    def time_ms(self, warmup, reps):
        calls[self._key] = calls.get(self._key, 0) + 1
        return real_time(self, warmup, reps)

    def init(self, backend, module, shapes):
        real_init(self, backend, module, shapes)
        self._key = module._hwnas_key

    sp.build_unit = build_unit
    cells_mod.UnitTimer.__init__, cells_mod.UnitTimer.time_ms = init, time_ms
    try:
        pred.cells_.measure_missing(X)
    finally:
        cells_mod.UnitTimer.__init__, cells_mod.UnitTimer.time_ms = real_init, real_time
    after = json.loads(progress.read_text())["blocks"]
    assert set(after) == keys
    for k, b in after.items():
        assert len(b["rounds"]) == 4, k  # every unit has exactly its rounds: none measured twice
        had = before.get(k, {"rounds": []})["rounds"]
        assert b["rounds"][:len(had)] == had  # rounds from before the kill are kept as they were
        assert calls.get(k, 0) == 4 - min(len(had), 4)
    from latency_predictors.registry import load_profile

    prof = load_profile(device_dir / "x86-2core-ort.yaml")  # still a valid profile
    assert set(prof.tables["nasnet.cells"].entries) == keys
    assert np.isfinite(pred.predict(X)).all()
