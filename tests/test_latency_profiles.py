"""Device profiles, the registry and the latency CLI on small hand-made profiles (no reference data)."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from latency_predictors import (Calibration, DeviceProfile, LatencyPredictor, Source, SpaceTable, find_profile,
                                list_profiles, load_profile, save_profile, user_dir)
from search_spaces import get_space
from search_spaces.errors import UserError

SPACE = get_space("ofa")
RES = 176


def toy_profile(name="toy", resolution=RES, aliases=("toy-phone",), **kw) -> DeviceProfile:
    """Every block at one resolution costs 1 ms + its index / 1000 (so sums are easy to check)."""
    keys = SPACE.block_keys()
    ids = SPACE.searched_block_ids(resolutions=[resolution])
    entries = {str(keys[i]): 1.0 + j / 1000 for j, i in enumerate(ids)}
    return DeviceProfile(name=name, aliases=list(aliases), source=Source(kind="measured", provenance="test"),
                         tables={"ofa": SpaceTable(entries=entries)}, **kw)


def archs_at(resolution, n=5, seed=0):
    X = SPACE.sample_encoded(np.random.default_rng(seed), n)
    X[:, -1] = SPACE.dims[-1].choices.index(resolution)
    return X


def test_user_dir_follows_env(device_dir):
    assert user_dir() == device_dir


def test_profile_round_trips_through_yaml(device_dir):
    prof = toy_profile(calibration=Calibration(scale=1.1, offset_ms="2ms"))
    path = save_profile(prof)
    assert path == device_dir / "toy.yaml"
    again = load_profile(path)
    assert again == prof and again.calibration.offset_ms == 2.0
    user = [r.profile.name for r in list_profiles() if r.path.parent == device_dir]
    assert user == ["toy"]
    assert find_profile("toy-phone").profile.name == "toy"


def test_predictor_is_the_sum_of_each_archs_blocks_with_calibration(device_dir):
    prof = toy_profile(calibration=Calibration(scale=2.0, offset_ms=1.5))
    table = prof.tables["ofa"]
    pred = LatencyPredictor(prof, "ofa")
    assert pred.source == "measured"
    X = archs_at(RES)
    expected = [2.0 * sum(table.lookup_ms(k) for k in SPACE.blocks(a)) + 1.5 for a in SPACE.decode(X)]
    np.testing.assert_allclose(pred.predict(X), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(pred.predict(SPACE.decode(X)), expected, rtol=0, atol=1e-9)


def test_resolution_sections_override_entries():
    prof = toy_profile()
    key = str(SPACE.blocks(SPACE.decode(archs_at(RES, 1))[0])[-1])  # the classifier at RES
    table = prof.tables["ofa"].model_copy(update={"by_resolution": {RES: {key: 100.0}}})
    prof = prof.model_copy(update={"tables": {"ofa": table}})
    base = LatencyPredictor(toy_profile(), "ofa").predict(archs_at(RES))
    over = LatencyPredictor(prof, "ofa").predict(archs_at(RES))
    np.testing.assert_allclose(over - base, 100.0 - toy_profile().tables["ofa"].entries[key])


def test_missing_entry_names_block_and_profile_command(device_dir):
    pred = LatencyPredictor(toy_profile(), "ofa")
    with pytest.raises(UserError) as e:
        pred.predict(archs_at(224))
    msg = str(e.value)
    assert "Conv-input:224x224x3" in msg and "nas profile --device toy --space ofa" in msg
    lat = pred.predict(np.concatenate([archs_at(RES, 2), archs_at(224, 2)]), missing="nan")
    assert np.isfinite(lat[:2]).all() and np.isnan(lat[2:]).all()
    # Keys are shapes, so a one-resolution table also prices equal blocks at other resolutions.
    assert 1 / 25 <= pred.coverage() < 1


def write_toy(device_dir) -> Path:
    return save_profile(toy_profile(), device_dir)


def test_cli_devices_and_predict(device_dir, nas_cli, tmp_path):
    write_toy(device_dir)
    code, out, _ = nas_cli("devices")
    assert code == 0 and "toy (aliases: toy-phone)" in out and "ofa" in out and "measured" in out
    code, out, _ = nas_cli("devices", "--json")
    assert code == 0 and '"toy"' in out
    arch_file = tmp_path / "archs.json"
    arch_file.write_text(json.dumps(SPACE.decode(archs_at(RES, 3))))
    code, out, err = nas_cli("predict", "--space", "ofa", "--device", "toy-phone", "--arch", arch_file, "--json")
    assert code == 0, err
    rows = json.loads(out)["archs"]
    assert len(rows) == 3 and all(r["latency_ms"] > 0 and r["macs"] > 0 and r["params"] > 0 for r in rows)
    arch_file.write_text(json.dumps(SPACE.decode(archs_at(RES, 1))[0]))  # one arch, not a list
    code, out, _ = nas_cli("predict", "--space", "ofa", "--device", "toy", "--arch", arch_file)
    assert code == 0 and "latency_ms" in out and "source: measured" in out


def one_line_error(result, *needles):
    code, out, err = result
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1, err
    for n in needles:
        assert n in err, err


def test_cli_unknown_device_lists_known_ones(device_dir, nas_cli, tmp_path):
    write_toy(device_dir)
    arch = tmp_path / "a.json"
    arch.write_text("{}")
    one_line_error(nas_cli("predict", "--space", "ofa", "--device", "pixel9", "--arch", arch),
                   "unknown device 'pixel9'", "toy (aliases: toy-phone)")


def test_cli_missing_entry(device_dir, nas_cli, tmp_path):
    write_toy(device_dir)
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps(SPACE.decode(archs_at(224, 1))[0]))
    one_line_error(nas_cli("predict", "--space", "ofa", "--device", "toy", "--arch", arch),
                   "no latency for block", "nas profile --device toy --space ofa")


@pytest.mark.parametrize("edit, needles", [
    (lambda d: d["source"].update(kind="guessed"), ["bad.yaml", "field source.kind"]),
    (lambda d: d["calibration"].update(offset_ms="2 parsecs"), ["bad.yaml", "field calibration.offset_ms", "80ms"]),
    (lambda d: d["tables"]["ofa"]["entries"].update({"Conv-input:oops": 1.0}), ["bad.yaml", "field tables.ofa.entries"]),
    (lambda d: d.update(colour="red"), ["bad.yaml", "field colour"]),
    (lambda d: d.pop("source"), ["bad.yaml", "field source"]),
    (lambda d: d.update(name="other"), ["bad.yaml", "field name"]),
])
def test_cli_malformed_profile_names_file_and_field(device_dir, nas_cli, edit, needles, tmp_path):
    data = yaml.safe_load(write_toy(device_dir).read_text())
    (device_dir / "toy.yaml").unlink()
    data["name"] = "bad"
    edit(data)
    (device_dir / "bad.yaml").write_text(yaml.safe_dump(data))
    listed_as_broken(nas_cli, tmp_path, "bad", *needles)


def listed_as_broken(nas_cli, tmp_path, name, *needles):
    """A broken profile no longer blocks `nas devices`: it is listed as broken with the file and field,
    and asking for it by name is the one-line error that names them."""
    code, out, err = nas_cli("devices")
    assert code == 0 and f"{name} - BROKEN" in out and "pixel1" in out, (out, err)
    for n in needles:
        assert n in out, out
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps(SPACE.decode(archs_at(RES, 1))[0]))
    one_line_error(nas_cli("predict", "--space", "ofa", "--device", name, "--arch", arch), *needles)


def test_cli_profile_that_is_not_yaml(device_dir, nas_cli, tmp_path):
    device_dir.mkdir(parents=True)
    (device_dir / "broken.yaml").write_text("name: broken\nsource: [unclosed\n")
    listed_as_broken(nas_cli, tmp_path, "broken", "broken.yaml", "not valid YAML")


def test_every_latency_command_has_an_example(nas_cli):
    for cmd in ("devices", "predict", "import-table"):
        code, out, _ = nas_cli(cmd, "--help")
        assert code == 0 and "example:" in out and f"nas {cmd}" in out


def test_devices_shows_validation_and_fit_figures(device_dir, nas_cli):
    from latency_predictors import FitReport, ValidationFigures

    prof = toy_profile(validation={"ofa": ValidationFigures(reference="onnxruntime whole model", n_archs=20,
                                                            mape_pct=4.25)},
                       fit=FitReport(method="operator-cost-v1", n_points=56, mape_pct=7.5,
                                     model={"coefficients": {"a": 1.0}}))
    save_profile(prof, device_dir)
    code, out, _ = nas_cli("devices")
    assert code == 0 and "ofa: MAPE 4.2% on 20 archs" in out and "MAPE 7.5% on 56 points" in out
