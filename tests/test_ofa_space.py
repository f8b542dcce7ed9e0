"""The ofa spaces: schema, canonical form, variation, costs without building, and building."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import InvalidArchError, get_space, list_spaces
from search_spaces.counting import count_macs_params

SPACES = ["ofa", "ofa-w1.0"]


def test_registry_lists_both_widths():
    assert {"ofa", "ofa-w1.0"} <= set(list_spaces())


@pytest.mark.parametrize("name", SPACES)
def test_size_matches_once_for_all_count(name):
    sp = get_space(name)
    # (9^2 + 9^3 + 9^4)^5 per resolution: Once-for-All's "about 2x10^19".
    assert sp.size_per_resolution() == (81 + 729 + 6561) ** 5
    assert 2e19 < sp.size_per_resolution() < 2.3e19
    assert sp.size() == sp.size_per_resolution() * 25


def test_canonical_form_makes_equal_networks_equal():
    sp = get_space("ofa")
    a = {"ks": [7] * 20, "e": [6] * 20, "d": [2] * 5, "r": 160}
    b = {"ks": [7, 7, 5, 3] * 5, "e": [6, 6, 4, 3] * 5, "d": [2] * 5, "r": [160]}
    assert sp.key(a) == sp.key(b)
    assert sp.validate(a)["ks"][2] == 3 and sp.validate(a)["r"] == [160]
    c = dict(b, d=[3, 2, 2, 2, 2])
    assert sp.key(c) != sp.key(b)


@pytest.mark.parametrize("bad, field", [
    ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 160}, "ks"),
    ({"ks": [4] + [3] * 19, "e": [3] * 20, "d": [2] * 5, "r": 160}, "ks[0]"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 225}, "r"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [5, 2, 2, 2, 2], "r": 160}, "d[0]"),
    ({"ks": [3] * 20, "e": [5] * 20, "d": [2] * 5, "r": 160}, "e[0]"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5}, "r"),
    ({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160, "x": 1}, "x"),
])
def test_invalid_arch_names_field_and_allowed_values(bad, field):
    with pytest.raises(InvalidArchError) as err:
        get_space("ofa").validate(bad)
    msg = str(err.value)
    assert msg.startswith(field) or field in msg
    assert "\n" not in msg
    assert isinstance(err.value, ValueError)


def test_allowed_values_are_listed():
    with pytest.raises(ValueError, match=r"allowed: 3, 5, 7"):
        get_space("ofa").validate({"ks": [4] * 20, "e": [3] * 20, "d": [2] * 5, "r": 160})
    with pytest.raises(ValueError, match=r"allowed: 2, 3, 4"):
        get_space("ofa").validate({"ks": [3] * 20, "e": [3] * 20, "d": [5] * 5, "r": 160})


def test_sample_mutate_crossover_stay_in_space():
    sp = get_space("ofa")
    rng = np.random.default_rng(0)
    X = sp.sample_encoded(rng, 500)
    assert X.shape == (500, 46)
    assert (sp.canonical(X) == X).all()
    r = np.asarray(sp.dims[-1].choices)[X[:, -1]]
    assert r.min() >= 128 and r.max() <= 224 and (r % 4 == 0).all()
    assert len(set(r)) > 15  # the whole grid is sampled, not a few values
    M = sp.mutate_encoded(X, rng, 0.1)
    changed = (M != X).any(axis=1).mean()
    assert 0.5 < changed < 1.0
    assert (sp.mutate_encoded(X, rng, 0.0) == X).all()
    C = sp.crossover_encoded(X[:250], X[250:], rng)
    assert ((C == X[:250]) | (C == X[250:])).all()
    for arch in sp.decode(np.concatenate([M[:20], C[:20]])):
        sp.validate(arch)
    a, b = sp.sample(rng, 2)
    sp.validate(sp.mutate(a, rng, 0.5))
    sp.validate(sp.crossover(a, b, rng))


def test_encode_decode_round_trip():
    sp = get_space("ofa")
    X = sp.sample_encoded(np.random.default_rng(1), 50)
    assert (sp.encode(sp.decode(X)) == X).all()


@pytest.mark.parametrize("name", SPACES)
def test_costs_without_building_match_the_built_network(name):
    sp = get_space(name)
    rng = np.random.default_rng(2)
    archs = sp.sample(rng, 4) + [
        {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224},
        {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128},
    ]
    X = sp.encode(archs)
    macs, params = sp.macs(X), sp.params(X)
    for i, arch in enumerate(archs):
        model = sp.build(arch)
        assert params[i] == sum(p.numel() for p in model.parameters())
        assert macs[i] == count_macs_params(model, sp.input_shape(arch))[0]


def test_blocks_follow_the_network():
    sp = get_space("ofa")
    arch = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 3] * 5, "d": [2, 3, 4, 2, 3], "r": 192}
    keys = [str(k) for k in sp.blocks(arch)]
    assert keys[0] == "Conv-input:192x192x3-output:96x96x24"
    assert keys[1] == "expanded_conv-input:96x96x24-output:96x96x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"
    assert keys[2] == "expanded_conv-input:96x96x24-output:48x48x32-expand:72-kernel:3-stride:2-idskip:0-se:0-hs:0"
    assert keys[-4:] == ["Conv_1-input:6x6x192-output:6x6x1152", "AvgPool2D-input:6x6x1152-output:1x1x1152",
                         "Conv_2-input:1x1x1152-output:1x1x1536", "Logits-input:1x1x1536-output:1000"]
    assert len(keys) == 2 + sum(arch["d"]) + 4
    model = sp.build(arch)
    mb = [k for k in sp.blocks(arch) if k.op == "expanded_conv"]
    for key, row in zip(mb, model.layer_table()):
        assert (key.param("kernel"), key.param("expand"), key.output[2]) == (
            row["kernel_size"], row["mid_channels"], row["out_channels"])


def test_build_accepts_released_resolutions():
    sp = get_space("ofa-w1.0")
    arch = sp.validate({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 260})
    out = sp.build(arch).eval()(torch.zeros(1, 3, 260, 260))
    assert out.shape == (1, 1000)
