"""The SearchSpace contract, checked on every registered space (and the custom-space example).

A new space registered with ``@register_space`` is tested here for free: sampling, validation,
canonical forms, variation, encoding, blocks, analytic costs against the built module, build and
forward, ONNX export run in ONNX Runtime, and pricing on every shipped device profile covering it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import search_spaces  # noqa: F401  (registers the built-in spaces)
from latency_predictors import LatencyPredictor
from latency_predictors.registry import load_profile, shipped_dir
from nas.export import check_onnx, onnx_bytes
from search_spaces import BlockKey, InvalidArchError, get_space, list_spaces
from search_spaces.counting import count_macs_params
from pathlib import Path

CUSTOM = f"{Path(__file__).resolve().parents[1] / 'experiments' / 'custom_space.py'}:TinyChain"
SPACES = list_spaces() + [CUSTOM]
N_ARCHS = 6


def _id(name: str) -> str:
    return "custom-example" if name == CUSTOM else name


@pytest.fixture(scope="module", params=SPACES, ids=_id)
def space(request):
    return get_space(request.param)


@pytest.fixture(scope="module")
def archs(space):
    return space.sample(np.random.default_rng(0), N_ARCHS)


def _smallest_resolution(space, arch):
    """The arch at the space's smallest allowed input resolution, if it has a resolution dim (fast builds)."""
    X = space.encode([arch])
    for j, d in enumerate(space.dims):
        if d.name in ("r", "resolution"):
            X[0, j] = int(np.argmin(d.choices))
    return space.decode(space.canonical(X))[0]


def test_sample_encode_decode_round_trip(space, archs):
    X = space.encode(archs)
    assert X.shape == (N_ARCHS, len(space.dims)) and X.dtype == np.int64
    assert np.array_equal(space.canonical(X), X)
    assert space.decode(X) == archs
    for arch in archs:
        assert space.validate(json.loads(json.dumps(arch))) == arch  # archs are plain JSON
        assert space.key(arch) == space.key(space.validate(arch))
    assert space.size() >= 1
    assert space.features(X).shape[0] == N_ARCHS


def test_samples_use_searched_values(space):
    X = space.sample_encoded(np.random.default_rng(1), 64)
    raw = space.sample_encoded(np.random.default_rng(1), 64)
    assert np.array_equal(space.canonical(raw), X)
    for j, d in enumerate(space.dims):
        canon_ok = set(d.search_index.tolist()) | set(np.unique(space.canonical(X)[:, j]).tolist())
        assert set(np.unique(X[:, j]).tolist()) <= canon_ok


def test_mutate_and_crossover_give_valid_archs(space, archs):
    rng = np.random.default_rng(2)
    for a, b in zip(archs, archs[1:]):
        m = space.mutate(a, rng, 0.5)
        assert space.validate(m) == m
        c = space.crossover(a, b, rng)
        assert space.validate(c) == c
    assert space.mutate(archs[0], rng, 0.0) == archs[0]


def _with_bad_leaf(value):
    """``value`` with its first scalar (depth first) replaced by a value no space allows."""
    if isinstance(value, list) and value:
        return [_with_bad_leaf(value[0])] + value[1:]
    if isinstance(value, dict) and value:
        k = next(iter(value))
        return {**value, k: _with_bad_leaf(value[k])}
    return "bogus-value"


def test_invalid_archs_name_the_field_in_one_line(space, archs):
    arch = archs[0]
    with pytest.raises(InvalidArchError):
        space.validate("not a dict")
    with pytest.raises(InvalidArchError, match="zzz_unknown"):
        space.validate({**arch, "zzz_unknown": 1})
    field = next(iter(arch))
    with pytest.raises(InvalidArchError) as e:
        space.validate({**arch, field: _with_bad_leaf(arch[field])})
    msg = str(e.value)
    assert field in msg and "\n" not in msg and "allowed" in msg, msg
    with pytest.raises(InvalidArchError, match=field):
        space.validate({k: v for k, v in arch.items() if k != field})


def _has_blocks(space) -> bool:
    try:
        space.block_keys()
    except NotImplementedError:
        return False
    return True


def test_blocks_agree_with_the_block_matrix(space, archs):
    if not _has_blocks(space):
        pytest.skip(f"space {space.name!r} has no per-block cost model")
    keys = space.block_keys()  # may repeat a key (ofa: one section per resolution)
    X = space.encode(archs)
    ids = space.block_matrix(X)
    assert ids.shape[0] == N_ARCHS and ids.min() >= -1 and ids.max() < len(keys)
    searched = set(space.searched_block_ids().tolist())
    for arch, row in zip(archs, ids):
        assert space.blocks(arch) == [keys[i] for i in row if i >= 0]
        assert {int(i) for i in row if i >= 0} <= searched
    for k in keys[:50]:
        assert BlockKey.parse(str(k)) == k
    macs, params = space.block_costs()
    assert len(macs) == len(params) == len(keys) and (macs >= 0).all() and (params >= 0).all()


def test_analytic_costs_match_the_built_network(space, archs):
    for arch in archs[:1]:
        arch = _smallest_resolution(space, arch)
        X = space.encode([arch])
        net = space.build(arch)
        macs, params = count_macs_params(net, space.input_shape(arch))
        try:
            want = space.macs(X)[0], space.params(X)[0]
        except NotImplementedError:
            pytest.skip(f"space {space.name!r} has no analytic costs")
        assert macs == pytest.approx(want[0], rel=1e-6), arch
        assert params == pytest.approx(want[1], rel=1e-6), arch


def test_build_forward_and_onnx_runtime(space, archs):
    arch = _smallest_resolution(space, archs[0])
    net = space.build(arch).eval()
    shape = space.input_shape(arch)
    with torch.no_grad():
        out = net(torch.randn(2, *shape))
    assert out.ndim == 2 and out.shape[0] == 2 and torch.isfinite(out).all()
    assert check_onnx(onnx_bytes(net, shape), net, shape) <= 1e-4


def _shipped_profiles():
    return [load_profile(p) for p in sorted(shipped_dir().glob("*.yaml"))]


def test_priced_on_every_shipped_profile_that_covers_it(space, archs):
    if not _has_blocks(space) and not hasattr(space, "layer_choices"):
        pytest.skip(f"space {space.name!r} has no per-block cost model")
    covering = [p for p in _shipped_profiles()
                if space.name in p.tables or (p.fit is not None and p.fit.model)]
    if not covering:
        pytest.skip(f"no shipped profile covers space {space.name!r}")
    X = space.encode(archs)
    for profile in covering:
        ms = LatencyPredictor(profile, space).predict(X)
        assert ms.shape == (N_ARCHS,) and np.isfinite(ms).all() and (ms > 0).all(), profile.name
