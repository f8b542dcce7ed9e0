"""Importers of public tables reproduce the source tools' own latencies (needs ../shared/data)."""

import json

import numpy as np
import pytest

from latency_predictors import LatencyPredictor, LayerLatency, load_profile
from latency_predictors.importers import config_block_keys, price_block_keys, read_tables


def test_note10_import_reproduces_ofa_reference_latency(shared_data, device_dir, nas_cli):
    files = sorted((shared_data / "ofa").glob("note10_*_lookup_table.yaml"))
    assert len(files) == 5
    code, out, err = nas_cli("import-table", "--format", "ofa", *files, "--device", "note10")
    assert code == 0, err
    profile = load_profile(device_dir / "note10.yaml")
    assert sorted(profile.tables["ofa"].by_resolution) == [160, 176, 192, 208, 224]
    assert profile.source.kind == "imported" and profile.source.files[0].name == files[0].name

    records = json.loads((shared_data / "ofa" / "reference_predictions.json").read_text())["records"]
    assert len(records) == 40
    pred = LatencyPredictor("note10", "ofa")
    ours = pred.predict([r["arch"] for r in records])
    theirs = np.array([r["ofa_note10_latency_ms"] for r in records])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert pred.source == "imported"


def test_proxylessnas_prices_the_four_searched_nets(shared_data):
    table = read_tables("proxylessnas", [shared_data / "proxylessnas" / "mobile_trim.yaml"]).tables["proxyless"]
    assert len(table.entries) == 72
    totals = {}
    for path in sorted((shared_data / "proxylessnas").glob("*.config")):
        keys = config_block_keys(json.loads(path.read_text()))
        assert all(table.lookup_ms(k) is not None for k in keys), path.name
        totals[path.stem] = price_block_keys(table, keys)
    assert set(totals) == {"proxyless_cpu", "proxyless_gpu", "proxyless_mobile", "proxyless_mobile_14"}
    # Same layer choices, so the same latency in the searched space; mobile_14 only widens them.
    assert totals["proxyless_mobile"] == pytest.approx(totals["proxyless_mobile_14"])
    assert totals["proxyless_mobile"] == pytest.approx(82.5239, abs=1e-3)
    assert totals["proxyless_gpu"] < totals["proxyless_mobile"] < totals["proxyless_cpu"]


def test_proxylessnas_block_keys_follow_the_layer_list(shared_data):
    config = json.loads((shared_data / "proxylessnas" / "proxyless_mobile.config").read_text())
    keys = [str(k) for k in config_block_keys(config)]
    assert keys[0] == "Conv-input:224x224x3-output:112x112x32-hs:0"  # ReLU6, not the grammar's h-swish
    assert keys[1] == "expanded_conv-input:112x112x32-output:112x112x16-expand:1-kernel:3-stride:1-idskip:0"
    assert keys[2] == "expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0"
    assert keys[-2:] == ["Conv_1-input:7x7x320-output:7x7x1280-hs:0", "Logits-input:7x7x1280-output:1000"]
    blocks = sum(b["mobile_inverted_conv"]["name"] != "ZeroLayer" for b in config["blocks"])
    assert len(keys) == 1 + blocks + 2


def test_single_path_per_layer_table(shared_data, device_dir, nas_cli):
    path = shared_data / "single-path-nas" / "pixel1_runtime_model.json"
    code, _, err = nas_cli("import-table", "--format", "single-path", path, "--device", "pixel1", "--alias", "pixel")
    assert code == 0, err
    profile = load_profile(device_dir / "pixel1.yaml")
    layers = profile.tables["single_path"].layers
    assert layers.options == ["k3e3", "k3e6", "k5e3", "k5e6"]
    assert np.shape(layers.ms) == (22, 4) and layers.skip_ms == 0.0

    runtime = json.loads(path.read_text())
    model = LayerLatency(layers)
    rng = np.random.default_rng(0)
    choices = rng.integers(0, 5, size=(4, 22))  # 4 = skip
    choices[0] = 0
    choices[1] = 3
    expected = [sum(runtime[str(i)][str(c)] for i, c in enumerate(row) if c != 4) for row in choices]
    np.testing.assert_allclose(model.predict(choices), expected, rtol=0, atol=1e-9)
    assert model.predict(np.full(22, 4))[0] == 0.0


def test_import_extends_an_existing_profile(shared_data, device_dir, nas_cli):
    assert nas_cli("import-table", "--format", "proxylessnas", shared_data / "proxylessnas" / "mobile_trim.yaml",
                   "--device", "pixel1")[0] == 0
    assert nas_cli("import-table", "--format", "single-path",
                   shared_data / "single-path-nas" / "pixel1_runtime_model.json", "--device", "pixel1")[0] == 0
    profile = load_profile(device_dir / "pixel1.yaml")
    # The shipped pixel1 profile is the starting point: its modelled tables stay, the imports join them.
    assert {"proxyless", "single_path"} <= set(profile.tables)
    assert profile.source_of("proxyless").kind == "imported"
    assert profile.source_of("single_path").files[0].name == "pixel1_runtime_model.json"
    code, out, _ = nas_cli("devices")
    assert "proxyless (72 blocks)" in out and "single_path (22 layers)" in out


def test_import_refuses_a_file_of_another_format(shared_data, device_dir, nas_cli):
    code, out, err = nas_cli("import-table", "--format", "ofa", shared_data / "proxylessnas" / "mobile_trim.yaml",
                             "--device", "x", "--out", device_dir)
    assert code == 2 and err.count("\n") == 1 and "mobile_trim.yaml" in err
