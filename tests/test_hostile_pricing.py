"""Bad input to the pricing commands (convert, predict, export, import-table, fit-device, profile,
calibrate, devices): exactly one line on stderr, exit 2, no traceback, and the files already in
``--out`` left byte-identical. (tests/test_hostile_inputs.py covers search, sweep and run folders.)"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

EARLIER = b"an earlier result that must survive\n"
OFA_ARCH = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [224]}
PROXYLESS_ARCH = {"ops": ["k3e3"] * 21}
W = {"stem": 48, "first": 24, "stages": [40, 56, 112, 136, 256, 448], "head": 1792}


def _files(d: Path) -> dict[str, Path]:
    """Every bad (and a few good) input file a case may name, by a short label."""
    d.mkdir(parents=True, exist_ok=True)
    f = {}

    def put(name, data):
        p = d / name
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        f[name] = p

    put("garbage.bin", bytes(range(256)) * 3)
    put("garbage.json", b"\xff\xfe{\"ks\": \x81\x82}")
    put("garbage.csv", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8")
    put("garbage.yaml", b"\x00\x81\xfe\xff: \x9c")
    put("empty.json", "")
    put("deep.json", "[" * 100_000 + "]" * 100_000)
    put("list.json", "[1, 2, 3]")
    put("emptylist.json", "[]")
    put("string.json", '"ofa"')
    put("ofa.json", json.dumps(OFA_ARCH))
    put("ofa2.json", json.dumps([OFA_ARCH, OFA_ARCH]))
    put("proxyless.json", json.dumps(PROXYLESS_ARCH))
    put("badfield.json", json.dumps({"ks": 3, "e": [3] * 20, "d": [2] * 5, "r": [224]}))
    put("res1000.json", json.dumps({**OFA_ARCH, "r": [1000]}))
    put("env_space_int.json", json.dumps({"space": 123, "arch": OFA_ARCH}))
    put("env_params_list.json", json.dumps({"space": "proxyless", "space_params": [1], "arch": PROXYLESS_ARCH}))
    put("env_unknown_space.json", json.dumps({"space": "nope", "arch": OFA_ARCH}))
    put("env_w10.json", json.dumps({"space": "ofa-w1.0", "arch": OFA_ARCH}))
    put("env_unknown_param.json", json.dumps({"space": "proxyless", "space_params": {"depth": 2},
                                              "arch": PROXYLESS_ARCH}))
    put("env_bad_widths.json", json.dumps({"space": "proxyless", "space_params": {"widths": {**W, "stages": [1, 2]}},
                                           "arch": PROXYLESS_ARCH}))
    put("env_neg_widths.json", json.dumps({"space": "proxyless", "space_params": {"widths": {**W, "stem": -8}},
                                           "arch": PROXYLESS_ARCH}))
    put("env_ofa_params.json", json.dumps({"space": "ofa", "space_params": {"depth_mult": 2}, "arch": OFA_ARCH}))
    put("env_both.json", json.dumps({"space": "ofa", "arch": OFA_ARCH, "archs": [OFA_ARCH]}))
    put("netcfg_blocks_str.config", json.dumps({"name": "MobileNetV3", "first_conv": {"out_channels": 24},
                                                "blocks": "x"}))
    put("netcfg_no_first.config", json.dumps({"blocks": []}))
    put("netcfg_proxyless_bad.config", json.dumps({"name": "ProxylessNASNets", "first_conv": {"out_channels": 32},
                                                   "blocks": [{"mobile_inverted_conv": 5}] * 22}))
    put("netcfg_first_conv_int.config", json.dumps({"name": "MobileNetV3", "first_conv": 3, "blocks": [{}]}))
    put("yaml_list.yaml", "- 1\n- 2\n")
    put("yaml_bad.yaml", "a: [unclosed\n")
    put("yaml_nomean.yaml", "Conv-input:224x224x3-output:112x112x32: {median: 1}\n")
    put("sp_bad.json", json.dumps({"0": {"0": "fast"}}))
    put("sp_list.json", json.dumps([1, 2]))
    put("csv_nocols.csv", "a,b\n1,2\n")
    put("csv_badnum.csv", "arch,device,runtime,precision,threads,batch,resolution,latency_ms,top1,source\n"
                          "mobilenetv2_1.0,pixel1,tflite,fp32,1,1,abc,xx,0.7,paper\n")
    put("afile", "I am a file, not a folder\n")
    return f


# (label, argv with @name placeholders for the files above, @d their folder and @out the --out path, out kind)
# out kind: "file" (a file --out that must stay as it was), "dir" (a folder with an earlier file), None.
CASES = [
    # convert
    ("convert-missing", ["convert", "@d/nope.config"], None),
    ("convert-binary", ["convert", "@garbage.bin"], None),
    ("convert-empty", ["convert", "@empty.json"], None),
    ("convert-deep", ["convert", "@deep.json"], None),
    ("convert-string", ["convert", "@string.json"], None),
    ("convert-blocks-not-list", ["convert", "@netcfg_blocks_str.config", "--resolution", "224"], None),
    ("convert-no-first-conv", ["convert", "@netcfg_no_first.config", "--resolution", "224"], None),
    ("convert-first-conv-int", ["convert", "@netcfg_first_conv_int.config", "--resolution", "224"], None),
    ("convert-proxyless-bad-blocks", ["convert", "@netcfg_proxyless_bad.config", "--resolution", "224"], None),
    ("convert-no-resolution", ["convert", "@netcfg_blocks_str.config"], None),
    ("convert-resolution-word", ["convert", "@netcfg_blocks_str.config", "--resolution", "big"], None),
    ("convert-bare-arch-no-space", ["convert", "@ofa.json", "--out", "@out"], "file"),
    ("convert-unknown-space", ["convert", "@ofa.json", "--space", "nope", "--out", "@out"], "file"),
    ("convert-no-netconfig-format", ["convert", "@proxyless.json", "--space", "proxyless", "--out", "@out"], "file"),
    ("convert-conflicting-space", ["convert", "@env_w10.json", "--space", "ofa", "--out", "@out"], "file"),
    ("convert-two-archs", ["convert", "@ofa2.json", "--space", "ofa", "--out", "@out"], "file"),
    ("convert-out-under-file", ["convert", "@ofa.json", "--space", "ofa", "--out", "@afile/x.config"], None),
    # predict
    ("predict-no-device", ["predict", "--space", "ofa", "--arch", "@ofa.json"], None),
    ("predict-unknown-device", ["predict", "--space", "ofa", "--device", "pixel9", "--arch", "@ofa.json"], None),
    ("predict-unknown-space", ["predict", "--space", "nope", "--device", "pixel", "--arch", "@ofa.json"], None),
    ("predict-binary", ["predict", "--space", "ofa", "--device", "pixel", "--arch", "@garbage.json"], None),
    ("predict-deep", ["predict", "--space", "ofa", "--device", "pixel", "--arch", "@deep.json"], None),
    ("predict-list-of-ints", ["predict", "--space", "ofa", "--device", "pixel", "--arch", "@list.json"], None),
    ("predict-empty-list", ["predict", "--space", "ofa", "--device", "pixel", "--arch", "@emptylist.json"], None),
    ("predict-bad-field", ["predict", "--space", "ofa", "--device", "pixel", "--arch", "@badfield.json"], None),
    ("predict-resolution-1000", ["predict", "--space", "ofa", "--device", "pixel", "--arch", "@res1000.json"], None),
    ("predict-space-not-str", ["predict", "--device", "pixel", "--arch", "@env_space_int.json"], None),
    ("predict-params-not-object", ["predict", "--device", "pixel", "--arch", "@env_params_list.json"], None),
    ("predict-file-names-unknown-space", ["predict", "--device", "pixel", "--arch", "@env_unknown_space.json"], None),
    ("predict-conflicting-space", ["predict", "--space", "ofa", "--device", "pixel", "--arch", "@env_w10.json"], None),
    ("predict-unknown-param", ["predict", "--device", "pixel", "--arch", "@env_unknown_param.json"], None),
    ("predict-bad-widths", ["predict", "--device", "pixel", "--arch", "@env_bad_widths.json"], None),
    ("predict-negative-width", ["predict", "--device", "pixel", "--arch", "@env_neg_widths.json"], None),
    ("predict-unknown-space-param", ["predict", "--device", "pixel", "--arch", "@env_ofa_params.json"], None),
    ("predict-arch-and-archs", ["predict", "--device", "pixel", "--arch", "@env_both.json"], None),
    ("predict-bare-arch-no-space", ["predict", "--device", "pixel", "--arch", "@ofa.json"], None),
    # export
    ("export-bad-suffix", ["export", "--space", "ofa", "--arch", "@ofa.json", "--out", "@d/m.txt"], None),
    ("export-two-archs", ["export", "--space", "ofa", "--arch", "@ofa2.json", "--out", "@out"], "file"),
    ("export-invalid-arch", ["export", "--space", "ofa", "--arch", "@badfield.json", "--out", "@out"], "file"),
    ("export-conflicting-space", ["export", "--space", "ofa", "--arch", "@env_w10.json", "--out", "@out"], "file"),
    ("export-bad-widths", ["export", "--arch", "@env_bad_widths.json", "--out", "@out"], "file"),
    ("export-out-under-file", ["export", "--space", "ofa", "--arch", "@ofa.json", "--out", "@afile/m.onnx"], None),
    # import-table
    ("import-unknown-format", ["import-table", "--format", "tflite", "@yaml_bad.yaml", "--device", "t1"], None),
    ("import-missing-file", ["import-table", "--format", "ofa", "@d/none.yaml", "--device", "t1", "--out", "@out"],
     "dir"),
    ("import-binary", ["import-table", "--format", "ofa", "@garbage.yaml", "--device", "t1", "--out", "@out"], "dir"),
    ("import-yaml-list", ["import-table", "--format", "proxylessnas", "@yaml_list.yaml", "--device", "t1",
                          "--out", "@out"], "dir"),
    ("import-bad-yaml", ["import-table", "--format", "proxylessnas", "@yaml_bad.yaml", "--device", "t1",
                         "--out", "@out"], "dir"),
    ("import-no-mean", ["import-table", "--format", "proxylessnas", "@yaml_nomean.yaml", "--device", "t1",
                        "--out", "@out"], "dir"),
    ("import-two-trims", ["import-table", "--format", "proxylessnas", "@yaml_nomean.yaml", "@yaml_bad.yaml",
                          "--device", "t1", "--out", "@out"], "dir"),
    ("import-single-path-bad", ["import-table", "--format", "single-path", "@sp_bad.json", "--device", "t1",
                                "--out", "@out"], "dir"),
    ("import-single-path-list", ["import-table", "--format", "single-path", "@sp_list.json", "--device", "t1",
                                 "--out", "@out"], "dir"),
    ("import-taken-alias", ["import-table", "--format", "proxylessnas", "@yaml_nomean.yaml", "--device", "t1",
                            "--alias", "pixel", "--out", "@out"], "dir"),
    ("import-device-is-alias", ["import-table", "--format", "proxylessnas", "@yaml_nomean.yaml", "--device", "x86",
                                "--out", "@out"], "dir"),
    ("import-bad-name", ["import-table", "--format", "proxylessnas", "@yaml_nomean.yaml", "--device", "My Phone!",
                         "--out", "@out"], "dir"),
    # fit-device
    ("fit-no-inputs", ["fit-device", "--name", "f1", "--out", "@out"], "dir"),
    ("fit-whole-without-configs", ["fit-device", "--name", "f1", "--whole", "@csv_nocols.csv", "--out", "@out"],
     "dir"),
    ("fit-binary-csv", ["fit-device", "--name", "f1", "--whole", "@garbage.csv", "--arch-configs", "@list.json",
                        "--out", "@out"], "dir"),
    ("fit-binary-configs", ["fit-device", "--name", "f1", "--whole", "@csv_nocols.csv", "--arch-configs",
                            "@garbage.json", "--out", "@out"], "dir"),
    ("fit-binary-blocks-yaml", ["fit-device", "--name", "f1", "--blocks", "@garbage.yaml", "--out", "@out"], "dir"),
    ("fit-binary-blocks-json", ["fit-device", "--name", "f1", "--blocks", "@garbage.json", "--out", "@out"], "dir"),
    ("fit-bad-runtime-model", ["fit-device", "--name", "f1", "--blocks", "@sp_bad.json", "--out", "@out"], "dir"),
    ("fit-runtime-model-list", ["fit-device", "--name", "f1", "--blocks", "@sp_list.json", "--out", "@out"], "dir"),
    ("fit-bad-yaml-blocks", ["fit-device", "--name", "f1", "--blocks", "@yaml_bad.yaml", "--out", "@out"], "dir"),
    ("fit-taken-alias", ["fit-device", "--name", "f1", "--alias", "x86", "--blocks", "@yaml_nomean.yaml",
                         "--out", "@out"], "dir"),
    ("fit-name-is-alias", ["fit-device", "--name", "pixel", "--blocks", "@yaml_nomean.yaml", "--out", "@out"],
     "dir"),
    ("fit-csv-missing-columns", ["fit-device", "--name", "f1", "--whole", "@csv_nocols.csv", "--arch-configs",
                                 "@list.json", "--out", "@out"], "dir"),
    # profile
    ("profile-threads-0", ["profile", "--device", "p1", "--space", "proxyless", "--threads", "0", "--out", "@out"],
     "dir"),
    ("profile-batch-negative", ["profile", "--device", "p1", "--space", "proxyless", "--batch", "-2", "--out",
                                "@out"], "dir"),
    ("profile-precision", ["profile", "--device", "p1", "--space", "proxyless", "--precision", "fp64", "--out",
                           "@out"], "dir"),
    ("profile-provider", ["profile", "--device", "p1", "--space", "proxyless", "--provider", "tpu", "--out",
                          "@out"], "dir"),
    ("profile-unknown-space", ["profile", "--device", "p1", "--space", "nope", "--out", "@out"], "dir"),
    ("profile-resolution", ["profile", "--device", "p1", "--space", "ofa", "--resolutions", "7", "--out", "@out"],
     "dir"),
    ("profile-limit-negative", ["profile", "--device", "p1", "--space", "proxyless", "--limit", "-1", "--out",
                                "@out"], "dir"),
    ("profile-rounds-0", ["profile", "--device", "p1", "--space", "proxyless", "--rounds", "0", "--out", "@out"],
     "dir"),
    ("profile-imported-device", ["profile", "--device", "pixel", "--space", "proxyless", "--limit", "1"], None),
    ("profile-out-is-file", ["profile", "--device", "p1", "--space", "proxyless", "--limit", "1", "--out",
                             "@afile"], None),
    # calibrate
    ("calibrate-n-0", ["calibrate", "--device", "x86", "--space", "proxyless", "--n", "0", "--out", "@out"], "dir"),
    ("calibrate-unknown-device", ["calibrate", "--device", "nope", "--space", "proxyless", "--out", "@out"], "dir"),
    ("calibrate-modelled-device", ["calibrate", "--device", "pixel", "--space", "proxyless", "--n", "3", "--out",
                                   "@out"], "dir"),
    ("calibrate-out-under-file", ["calibrate", "--device", "x86", "--space", "proxyless", "--n", "3", "--out",
                                  "@afile/sub"], None),
    ("calibrate-bad-resolution", ["calibrate", "--device", "x86", "--space", "ofa", "--n", "3", "--resolutions", "7",
                                  "--out", "@out"], "dir"),
    # devices
    ("devices-unknown-flag", ["devices", "--all"], None),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("label, argv, out_kind", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_keeps_earlier_files(nas_cli, files, tmp_path, label, argv, out_kind):
    out = tmp_path / "out"
    earlier = None
    if out_kind == "file":
        out = tmp_path / ("out.onnx" if argv[0] == "export" else "out.json")
        out.write_bytes(EARLIER)
    elif out_kind == "dir":
        out.mkdir()
        earlier = out / "earlier.yaml"
        earlier.write_bytes(EARLIER)
    subs = {"out": str(out), "d": str(next(iter(files.values())).parent), **{k: str(v) for k, v in files.items()}}
    args = [re.sub(r"@([a-z0-9_.]+)", lambda m: subs[m.group(1)], a) for a in argv]
    code, stdout, err = nas_cli(*args)
    assert code == 2, (label, code, stdout, err)
    assert err.count("\n") == 1 and err.endswith("\n"), (label, err)
    assert "Traceback" not in err and "internal error" not in err, (label, err)
    if out_kind == "file":
        assert out.read_bytes() == EARLIER
    elif out_kind == "dir":
        assert earlier.read_bytes() == EARLIER and sorted(os.listdir(out)) == ["earlier.yaml"], os.listdir(out)


def test_calibrate_checks_out_before_measuring(nas_cli, files, monkeypatch):
    """A calibrate that cannot write its result fails before timing any network (minutes of work)."""
    import latency_predictors.measure as measure

    def no_measuring(*a, **k):
        raise AssertionError("measured before checking --out")

    monkeypatch.setattr(measure, "measure_networks", no_measuring)
    code, _, err = nas_cli("calibrate", "--device", "x86", "--space", "proxyless", "--n", "3", "--out",
                           f"{files['afile']}/sub")
    assert code == 2 and "is a file, not a folder" in err


def test_at_least_forty_cases():
    assert len(CASES) >= 40
