"""The proxyless space: ProxylessNAS's released nets as archs, their MACs, and the mobile table."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nas
from latency_predictors import LatencyPredictor
from latency_predictors.importers import config_block_keys, price_block_keys, read_tables
from search_spaces import InvalidArchError, UserError, get_space
from search_spaces.counting import count_macs_params

# MACs and params of the released nets at 224x224, counted here (ProxylessNAS reports 320M / 4.1M
# for Mobile, 465M / 7.1M for GPU, 439M / 4.4M for CPU).
RELEASED = {"mobile": (320.427584e6, 4.080512e6), "mobile_14": (580.883408e6, 6.857568e6),
            "gpu": (465.26016e6, 7.119848e6), "cpu": (439.243864e6, 4.361648e6)}


@pytest.fixture(scope="module")
def space():
    return get_space("proxyless")


def _config(shared_data, name):
    return json.loads((shared_data / "proxylessnas" / f"proxyless_{name}.config").read_text())


def test_space_layout(space):
    assert len(space.dims) == 21
    assert [len(d.choices) for d in space.dims] == [6, 7, 7, 7] * 5 + [6]
    assert space.size() == 6 ** 6 * 7 ** 15
    assert len(space.searched_block_ids()) == len(space.block_keys()) == 70


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_nets_build_at_their_own_widths(space, shared_data, name):
    cfg = _config(shared_data, name)
    arch = space.from_net_config(cfg)
    wide = space.at_widths(space.config_widths(cfg))
    macs, params = RELEASED[name]
    X = wide.encode([arch])
    assert wide.macs(X)[0] == pytest.approx(macs) and wide.params(X)[0] == pytest.approx(params)
    if name in ("mobile", "cpu"):  # counting on the module is slow-ish; two nets suffice
        assert count_macs_params(space.build_net_config(cfg), (3, 224, 224)) == (round(macs), round(params))


def test_predict_prices_every_released_net_through_the_imported_table(space, shared_data, nas_cli):
    assert nas_cli("import-table", "--format", "proxylessnas", shared_data / "proxylessnas" / "mobile_trim.yaml",
                   "--device", "pxl-mobile")[0] == 0
    pred = LatencyPredictor("pxl-mobile", space)
    assert pred.coverage() == 1.0
    table = read_tables("proxylessnas", [shared_data / "proxylessnas" / "mobile_trim.yaml"]).tables["proxyless"]
    for name in RELEASED:
        cfg = _config(shared_data, name)
        arch = space.from_net_config(cfg)
        assert [str(k) for k in space.blocks(arch)] == [str(k) for k in config_block_keys(cfg)]
        assert pred.predict([arch])[0] == pytest.approx(price_block_keys(table, config_block_keys(cfg)))
    assert pred.predict([space.from_net_config(_config(shared_data, "mobile"))])[0] == pytest.approx(82.5239, abs=1e-3)


def test_convert_and_bad_configs(space, shared_data, tmp_path):
    res = nas.convert(shared_data / "proxylessnas" / "proxyless_gpu.config", resolution=224, space="proxyless")
    assert res["result"]["ops"][1:4] == ["skip", "skip", "skip"]
    ofa_proxyless = shared_data / "ofa" / "specialized" / "cpu_lat-10ms_top1-71.1_finetune-25" / "net.config"
    with pytest.raises(UserError):
        space.from_net_config(json.loads(ofa_proxyless.read_text()))
    cfg = _config(shared_data, "mobile")
    cfg["blocks"][1]["mobile_inverted_conv"] = {"name": "ZeroLayer", "stride": 1}
    with pytest.raises(InvalidArchError, match="block 1 is the first layer of stage 0"):
        space.from_net_config(cfg)


def test_invalid_arch_names_field(space):
    ops = ["k3e3"] * 21
    with pytest.raises(InvalidArchError, match=r"ops\[0\]: 'skip' is not allowed; allowed: k3e3, k3e6, k5e3, k5e6, k7e3, k7e6$"):
        space.validate({"ops": ["skip"] + ops[1:]})


def test_priced_on_the_pixel_model(space):
    ms = LatencyPredictor("pixel", space).predict(space.sample_encoded(np.random.default_rng(0), 500))
    assert np.isfinite(ms).all() and (ms > 20).all()
