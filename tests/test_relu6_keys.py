"""The proxyless space's stem and head are ReLU6 and their keys say so (hs:0), in the space, the
importer and the shipped profiles; before, the pixel1 cost model priced them as h-swish (+0.7 ms)."""

from __future__ import annotations

import pytest

from latency_predictors import LatencyPredictor
from latency_predictors.fit_device import model_from_profile
from latency_predictors.registry import get_profile
from search_spaces import get_space
from search_spaces.blocks import BlockKey


def _plain_convs(keys):
    return [k for k in keys if k.op in ("Conv", "Conv_1", "Conv_2")]


def test_proxyless_stem_and_head_keys_state_relu6():
    keys = _plain_convs(get_space("proxyless").block_keys())
    assert len(keys) == 2 and all(k.param("hs") == 0 for k in keys)


@pytest.mark.parametrize("device", ["pixel1", "x86-2core-ort"])
def test_shipped_proxyless_tables_hold_the_relu6_keys(device):
    table = get_profile(device).table("proxyless")
    convs = [BlockKey.parse(k) for k in table.entries if k.startswith("Conv")]
    assert convs and all("hs" in dict(k.params) for k in convs)
    pred = LatencyPredictor(device, "proxyless")
    assert pred.coverage() == 1.0 and not pred.modelled_.any()


def test_pixel1_prices_the_stem_and_head_as_relu6():
    profile = get_profile("pixel1")
    model = model_from_profile(profile)
    table = profile.table("proxyless").entries
    relu6 = _plain_convs(get_space("proxyless").block_keys())
    hswish = [BlockKey(k.op, k.input, k.output) for k in relu6]  # the grammar's default: h-swish
    for k in relu6:
        assert table[str(k)] == pytest.approx(float(model.predict_blocks([k])[0]), abs=1e-4)
    gap_ms = float(model.predict_blocks(hswish).sum() - model.predict_blocks(relu6).sum())
    assert gap_ms > 0.5  # what pricing them as h-swish added to every net


def test_imported_mobile_trim_keys_match_the_space(shared_data):
    from latency_predictors.importers import read_tables

    table = read_tables("proxylessnas", [shared_data / "proxylessnas" / "mobile_trim.yaml"]).tables["proxyless"]
    space_keys = {str(k) for k in get_space("proxyless").block_keys()}
    assert space_keys <= set(table.entries)
