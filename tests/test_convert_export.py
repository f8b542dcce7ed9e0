"""Once-for-All net.config conversion and export to ONNX / .pt."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

import nas
from search_spaces import get_space

FLOPS_NETS = {"flops-389M_top1-79.1_finetune-75": 389e6, "flops-482M_top1-79.6_finetune-75": 482e6,
              "flops-595M_top1-80.0_finetune-75": 595e6}


def mobilenetv3_nets(shared_data):
    folder = shared_data / "ofa" / "specialized"
    nets = sorted(p for p in folder.iterdir() if json.loads((p / "net.config").read_text())["name"] == "MobileNetV3")
    assert len(nets) >= 20
    return nets


def test_every_released_mobilenetv3_converts_and_builds_layer_by_layer(shared_data):
    for folder in mobilenetv3_nets(shared_data):
        cfg = json.loads((folder / "net.config").read_text())
        res = nas.convert(folder)
        sp = get_space(res["space"])
        assert sp.widths.stem == cfg["first_conv"]["out_channels"]
        assert res["file"] == {"space": res["space"], "arch": res["result"]}  # what --out writes
        arch = res["result"]
        assert arch["r"] == [json.loads((folder / "run.config").read_text())["image_size"]]
        built = sp.build(arch).layer_table()
        assert len(built) == len(cfg["blocks"])
        for row, blk in zip(built, cfg["blocks"]):
            mb = blk["mobile_inverted_conv"]
            expect_mid = mb["mid_channels"] or mb["in_channels"]
            assert (row["in_channels"], row["out_channels"], row["kernel_size"], row["stride"],
                    row["mid_channels"], row["act_func"], row["use_se"], row["residual"]) == (
                mb["in_channels"], mb["out_channels"], mb["kernel_size"], mb["stride"], expect_mid,
                mb["act_func"], mb["use_se"], blk["shortcut"] is not None), folder.name
        # and back: arch -> net.config -> arch is the identity
        back = sp.to_net_config(arch)
        assert sp.from_net_config(back, arch["r"][0]) == arch


def test_flops_nets_macs_match_their_names(shared_data):
    for name, macs in FLOPS_NETS.items():
        res = nas.convert(shared_data / "ofa" / "specialized" / name)
        sp = get_space(res["space"])
        got = sp.macs(sp.encode([res["result"]]))[0]
        assert abs(got / macs - 1) < 0.02, (name, got)


def test_proxyless_nets_are_refused_by_the_ofa_spaces(shared_data):
    folder = shared_data / "ofa" / "specialized" / "cpu_lat-10ms_top1-71.1_finetune-25"
    with pytest.raises(ValueError, match="no space accepts"):
        nas.convert(folder, space="ofa")


def test_onnx_export_matches_torch_for_random_archs(tmp_path):
    sp = get_space("ofa")
    archs = sp.sample(np.random.default_rng(3), 10)
    for i, arch in enumerate(archs):
        model = sp.build(arch).eval()
        info = nas.export("ofa", arch, tmp_path / f"m{i}.onnx", model=model)
        r = arch["r"][0]
        x = np.random.default_rng(i).standard_normal((1, 3, r, r), dtype=np.float32)
        sess = ort.InferenceSession(str(tmp_path / f"m{i}.onnx"), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        assert np.abs(sess.run(None, {"input": x})[0] - ref).max() <= 1e-4
        assert info["ort_max_abs_diff"] <= 1e-4


def test_pt_export_round_trip(tmp_path):
    sp = get_space("ofa-w1.0")
    arch = sp.sample(np.random.default_rng(4), 1)[0]
    model = sp.build(arch).eval()
    nas.export(sp, arch, tmp_path / "m.pt", model=model)
    loaded, arch2 = nas.load_pt(tmp_path / "m.pt")
    assert arch2 == arch
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))


def test_cli_spaces_convert_export(nas_cli, tmp_path, shared_data):
    code, out, _ = nas_cli("spaces", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and {"ofa", "ofa-w1.0"} <= set(rows)
    assert rows["ofa"]["size_per_resolution"] == (81 + 729 + 6561) ** 5
    assert [d["names"] for d in rows["ofa"]["dims"]] == ["ks[20]", "e[20]", "d[5]", "r"]
    code, out, _ = nas_cli("spaces")
    assert code == 0 and "ofa-w1.0" in out and "2.176e+19" in out
    src = shared_data / "ofa" / "specialized" / "flops-389M_top1-79.1_finetune-75"
    code, out, err = nas_cli("convert", src, "--out", tmp_path / "arch.json")
    assert code == 0, err
    code, out, err = nas_cli("export", "--space", "ofa", "--arch", tmp_path / "arch.json",
                             "--out", tmp_path / "m.onnx")
    assert code == 0, err
    assert (tmp_path / "m.onnx").stat().st_size > 1e6
    code, out, err = nas_cli("convert", tmp_path / "arch.json", "--space", "ofa", "--out", tmp_path / "net.config")
    assert code == 0, err
    assert json.loads((tmp_path / "net.config").read_text())["name"] == "MobileNetV3"


@pytest.mark.parametrize("content, needle", [
    ('{"ks": [3], "e": [3], "d": [2], "r": 160}', "ks: expected a list of 20 ints"),
    ('{"ks": [4,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], "e": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], '
     '"d": [2,2,2,2,2], "r": 160}', "ks[0]: 4 is not allowed; allowed: 3, 5, 7"),
    ('{"ks": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], "e": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], '
     '"d": [2,2,2,2,2], "r": 225}', "r: 225 is not allowed"),
    ('{"ks": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], "e": [3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3], '
     '"d": [5,2,2,2,2], "r": 160}', "d[0]: 5 is not allowed; allowed: 2, 3, 4"),
    ('{"ks": [3, 3', "is not valid JSON"),
    ('[]', "non-empty list"),
])
def test_cli_bad_arch_is_one_line_exit_2(nas_cli, tmp_path, content, needle):
    (tmp_path / "a.json").write_text(content)
    code, out, err = nas_cli("export", "--space", "ofa", "--arch", tmp_path / "a.json", "--out", tmp_path / "m.onnx")
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_cli_unknown_space_and_format(nas_cli, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(get_space("ofa").sample(np.random.default_rng(0), 1)[0]))
    code, _, err = nas_cli("export", "--space", "nope", "--arch", tmp_path / "a.json", "--out", tmp_path / "m.onnx")
    assert code == 2 and "unknown search space 'nope'; known:" in err and "ofa" in err
    code, _, err = nas_cli("export", "--space", "ofa", "--arch", tmp_path / "a.json", "--out", tmp_path / "m.tflite")
    assert code == 2 and "accepted: .onnx, .pt" in err
