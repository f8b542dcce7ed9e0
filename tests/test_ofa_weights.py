"""Once-for-All's released supernets: the state-dict mapping, the round trip and equal outputs.

The expected names and shapes are written here from Once-for-All's published layout
(``OFAMobileNetV3`` with ``DynamicMBConvLayer`` blocks), independently of ``nas.ofa_weights``; the
reference forward below re-implements Once-for-All's published semantics (active slices of the
largest weights, the kernel transform applied as ``F.linear(crop, M)``, SE width
``make_divisible(mid // 4, 8)``, depth as the first d blocks of a stage) on that key layout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from search_spaces import get_space
from search_spaces.errors import UserError


def _div8(v: float) -> int:
    """Once-for-All's make_divisible(v, 8): round to a multiple of 8, never below 90 % of v."""
    n = max(8, int(v + 4) // 8 * 8)
    return n + 8 if n < 0.9 * v else n


BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
SE_STAGE = (False, True, False, True, True)   # stages 1..5 (the first block has no SE)
STRIDES = (2, 2, 2, 1, 2)
ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")


def ofa_layout(width: float, n_classes: int = 1000, old_names: bool = False) -> dict[str, tuple]:
    """{key: shape} of OFAMobileNetV3(ks_list=[3,5,7], expand_ratio_list=[3,4,6], depth_list=[2,3,4])."""
    base = [16, 16, 24, 40, 80, 112, 160, 960, 1280]
    w = [_div8(b * width) for b in base]
    L: dict[str, tuple] = {}

    def bn(prefix, c):
        for f in BN:
            L[f"{prefix}.{f}"] = () if f == "num_batches_tracked" else (c,)

    blk = "mobile_inverted_conv" if old_names else "conv"
    L["first_conv.conv.weight"] = (w[0], 3, 3, 3)
    bn("first_conv.bn", w[0])
    L[f"blocks.0.{blk}.depth_conv.conv.weight"] = (w[0], 1, 3, 3)
    bn(f"blocks.0.{blk}.depth_conv.bn", w[0])
    L[f"blocks.0.{blk}.point_linear.conv.weight"] = (w[1], w[0], 1, 1)
    bn(f"blocks.0.{blk}.point_linear.bn", w[1])
    cin, i = w[1], 1
    for s in range(5):
        cout = w[2 + s]
        for _ in range(4):
            p = f"blocks.{i}.{blk}"
            mid = _div8(round(cin * 6))
            L[f"{p}.inverted_bottleneck.conv.conv.weight"] = (mid, cin, 1, 1)
            bn(f"{p}.inverted_bottleneck.bn.bn", mid)
            L[f"{p}.depth_conv.conv.conv.weight"] = (mid, 1, 7, 7)
            L[f"{p}.depth_conv.conv.7to5_matrix"] = (25, 25)
            L[f"{p}.depth_conv.conv.5to3_matrix"] = (9, 9)
            bn(f"{p}.depth_conv.bn.bn", mid)
            if SE_STAGE[s]:
                sq = _div8(mid // 4)
                L[f"{p}.depth_conv.se.fc.reduce.weight"] = (sq, mid, 1, 1)
                L[f"{p}.depth_conv.se.fc.reduce.bias"] = (sq,)
                L[f"{p}.depth_conv.se.fc.expand.weight"] = (mid, sq, 1, 1)
                L[f"{p}.depth_conv.se.fc.expand.bias"] = (mid,)
            L[f"{p}.point_linear.conv.conv.weight"] = (cout, mid, 1, 1)
            bn(f"{p}.point_linear.bn.bn", cout)
            cin, i = cout, i + 1
    L["final_expand_layer.conv.weight"] = (w[7], cin, 1, 1)
    bn("final_expand_layer.bn", w[7])
    L["feature_mix_layer.conv.weight"] = (w[8], w[7], 1, 1)
    L["classifier.linear.weight"] = (n_classes, w[8])
    L["classifier.linear.bias"] = (n_classes,)
    return L


def random_state(layout: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """Distinct random values for every tensor (non-identity kernel transforms, positive variances)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(int(torch.randint(1, 1000, (1,), generator=g)))
        elif k.endswith("running_var"):
            out[k] = 0.5 + torch.rand(shape, generator=g)
        elif k.endswith("_matrix"):
            n = shape[0]
            out[k] = torch.eye(n) + 0.1 * torch.randn(shape, generator=g)
        else:
            out[k] = 0.2 * torch.randn(shape, generator=g)
    return out


def test_published_widths_of_the_released_supernets():
    # widths of ofa_mbv3_d234_e346_k357_w1.2 as published: stem 24, stages 32/48/96/136/192, 1152, 1536
    L = ofa_layout(1.2)
    assert L["first_conv.conv.weight"][0] == 24
    assert [L[f"blocks.{1 + 4 * s}.conv.point_linear.conv.conv.weight"][0] for s in range(5)] == [32, 48, 96, 136, 192]
    assert L["feature_mix_layer.conv.weight"] == (1536, 1152, 1, 1)
    assert [ofa_layout(1.0)[f"blocks.{1 + 4 * s}.conv.point_linear.conv.conv.weight"][0] for s in range(5)] == \
        [24, 40, 80, 112, 160]


@pytest.mark.parametrize("space_name,width", [("ofa", 1.2), ("ofa-w1.0", 1.0)])
@pytest.mark.parametrize("old_names", [False, True])
def test_every_ofa_tensor_lands_where_it_must(space_name, width, old_names):
    from nas.ofa_weights import ofa_to_hwnas

    layout = ofa_layout(width, old_names=old_names)
    state = random_state(layout)
    net = get_space(space_name).supernet()
    mapped = ofa_to_hwnas(state, net)
    own = net.state_dict()
    assert set(mapped) == set(own)                      # nothing missing on the hwnas side
    assert len(mapped) == len(state)                    # one hwnas tensor per Once-for-All tensor
    # each value is found exactly once among the sources (nothing duplicated or invented)
    sources = {t.flatten()[:4].numpy().tobytes() for t in state.values() if t.numel() >= 4}
    for k, t in mapped.items():
        assert t.shape == own[k].shape, k
        if t.numel() >= 4 and not k.endswith(("kernel_transform.7to5", "kernel_transform.5to3")):
            assert t.flatten()[:4].numpy().tobytes() in sources, k
    blk = "mobile_inverted_conv" if old_names else "conv"
    # spot checks of the mapping itself
    assert torch.equal(mapped["stem.conv.weight"], state["first_conv.conv.weight"])
    assert torch.equal(mapped["blocks.5.expand.conv.weight"], state[f"blocks.5.{blk}.inverted_bottleneck.conv.conv.weight"])
    assert torch.equal(mapped["blocks.7.se.reduce.bias"], state[f"blocks.7.{blk}.depth_conv.se.fc.reduce.bias"])
    assert torch.equal(mapped["blocks.3.kernel_transform.7to5"], state[f"blocks.3.{blk}.depth_conv.conv.7to5_matrix"].t())
    assert torch.equal(mapped["blocks.0.project.bn.running_var"], state[f"blocks.0.{blk}.point_linear.bn.running_var"])
    assert torch.equal(mapped["classifier.bias"], state["classifier.linear.bias"])


def test_leftover_missing_and_wrong_width_are_one_line_errors():
    from nas.ofa_weights import ofa_to_hwnas

    net = get_space("ofa-w1.0").supernet()
    state = random_state(ofa_layout(1.0))
    extra = dict(state, **{"blocks.21.conv.depth_conv.conv.conv.weight": torch.zeros(1)})
    with pytest.raises(UserError, match="no place for"):
        ofa_to_hwnas(extra, net)
    short = dict(state)
    del short["blocks.9.conv.depth_conv.conv.5to3_matrix"]
    with pytest.raises(UserError, match="lacks 1 Once-for-All tensor"):
        ofa_to_hwnas(short, net)
    with pytest.raises(UserError, match="another width"):
        ofa_to_hwnas(random_state(ofa_layout(1.2)), net)


# ---- Once-for-All's semantics, re-implemented from its published description -----------------
def _ofa_bn(x, S, p, c):
    return F.batch_norm(x, S[f"{p}.running_mean"][:c], S[f"{p}.running_var"][:c], S[f"{p}.weight"][:c],
                        S[f"{p}.bias"][:c], False, 0.0, 1e-5)


def _act(x, name):
    return F.relu(x) if name == "relu" else x * F.relu6(x + 3) / 6


def _active_dw(W, mats, k):
    """Centre crops from 7, each passed through F.linear with that step's matrix (Once-for-All)."""
    f = W
    for big, small in ((7, 5), (5, 3)):
        if f.shape[-1] <= k:
            break
        o = (big - small) // 2
        crop = f[:, :, o:o + small, o:o + small].reshape(f.shape[0], small * small)
        f = F.linear(crop, mats[f"{big}to{small}"]).reshape(f.shape[0], 1, small, small)
    return f


def ofa_reference_forward(S: dict, arch: dict, x: torch.Tensor) -> torch.Tensor:
    y = _act(_ofa_bn(F.conv2d(x, S["first_conv.conv.weight"], None, 2, 1), S, "first_conv.bn", 10 ** 6), "h_swish")
    b0 = "blocks.0.conv"
    z = F.conv2d(y, S[f"{b0}.depth_conv.conv.weight"], None, 1, 1, 1, y.shape[1])
    z = _act(_ofa_bn(z, S, f"{b0}.depth_conv.bn", 10 ** 6), "relu")
    z = _ofa_bn(F.conv2d(z, S[f"{b0}.point_linear.conv.weight"]), S, f"{b0}.point_linear.bn", 10 ** 6)
    y = y + z
    for s in range(5):
        for j in range(arch["d"][s]):
            i = 4 * s + j
            p = f"blocks.{1 + i}.conv"
            cin = y.shape[1]
            mid = _div8(round(cin * arch["e"][i]))
            k = arch["ks"][i]
            stride = STRIDES[s] if j == 0 else 1
            z = F.conv2d(y, S[f"{p}.inverted_bottleneck.conv.conv.weight"][:mid, :cin])
            z = _act(_ofa_bn(z, S, f"{p}.inverted_bottleneck.bn.bn", mid), ACTS[s])
            mats = {n: S[f"{p}.depth_conv.conv.{n}_matrix"] for n in ("7to5", "5to3")}
            dw = _active_dw(S[f"{p}.depth_conv.conv.conv.weight"][:mid], mats, k)
            z = F.conv2d(z, dw, None, stride, k // 2, 1, mid)
            z = _act(_ofa_bn(z, S, f"{p}.depth_conv.bn.bn", mid), ACTS[s])
            if SE_STAGE[s]:
                sq = _div8(mid // 4)
                g = z.mean((2, 3), keepdim=True)
                g = F.relu(F.conv2d(g, S[f"{p}.depth_conv.se.fc.reduce.weight"][:sq, :mid],
                                    S[f"{p}.depth_conv.se.fc.reduce.bias"][:sq]))
                g = F.conv2d(g, S[f"{p}.depth_conv.se.fc.expand.weight"][:mid, :sq],
                             S[f"{p}.depth_conv.se.fc.expand.bias"][:mid])
                z = z * (F.relu6(g + 3) / 6)
            cout = S[f"{p}.point_linear.conv.conv.weight"].shape[0]
            z = _ofa_bn(F.conv2d(z, S[f"{p}.point_linear.conv.conv.weight"][:, :mid]), S, f"{p}.point_linear.bn.bn", cout)
            y = y + z if (stride == 1 and cin == cout) else z
    y = _act(_ofa_bn(F.conv2d(y, S["final_expand_layer.conv.weight"]), S, "final_expand_layer.bn", 10 ** 6), "h_swish")
    y = _act(F.conv2d(y.mean((2, 3), keepdim=True), S["feature_mix_layer.conv.weight"]), "h_swish")
    return F.linear(y.flatten(1), S["classifier.linear.weight"], S["classifier.linear.bias"])


def test_outputs_equal_once_for_alls_semantics_on_random_weights():
    from nas.ofa_weights import ofa_to_hwnas

    sp = get_space("ofa-w1.0")
    S = random_state(ofa_layout(1.0), seed=3)
    net = sp.supernet().eval()
    net.load_state_dict(ofa_to_hwnas(S, net))
    rng = np.random.default_rng(0)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    archs = [sp.decode(sp.sample_encoded(rng, 1))[0] for _ in range(3)]
    archs.append({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [128]})
    archs.append({"ks": [5] * 20, "e": [4] * 20, "d": [4] * 5, "r": [128]})
    with torch.no_grad():
        for arch in archs:
            ref = ofa_reference_forward(S, arch, x)
            got = net.set_active(arch)(x)
            assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4 * ref.abs().max()), arch
            static = net.extract(arch).eval()(x)
            assert torch.allclose(static, ref, rtol=1e-4, atol=1e-4 * ref.abs().max())


def test_import_save_load_round_trip_is_exact(tmp_path, nas_cli):
    from nas.checkpoints import load_supernet
    from nas.ofa_weights import hwnas_to_ofa

    S = random_state(ofa_layout(1.2), seed=5)
    src = tmp_path / "ofa_mbv3_d234_e346_k357_w1.2"
    torch.save({"state_dict": S}, src)
    code, out, err = nas_cli("import-weights", "--format", "ofa", src, "--space", "ofa", "--out", tmp_path / "w12.pt")
    assert code == 0, err
    net = load_supernet(tmp_path / "w12.pt", "ofa")
    back = hwnas_to_ofa(net)
    assert set(back) == set(S)
    assert all(torch.equal(back[k], S[k]) for k in S)
    # format detection, and refusing to overwrite
    code, _, err = nas_cli("import-weights", src, "--out", tmp_path / "w12.pt")
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1


def test_bad_weight_files_are_one_line_errors(tmp_path, nas_cli):
    S = random_state(ofa_layout(1.0))
    good = tmp_path / "w10"
    torch.save({"state_dict": S}, good)
    truncated = tmp_path / "trunc"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a checkpoint at all")
    for bad, what in ((truncated, "not readable"), (garbage, "not readable")):
        code, _, err = nas_cli("import-weights", "--format", "ofa", bad, "--out", tmp_path / "x.pt")
        assert code == 2 and what in err and len(err.strip().splitlines()) == 1, err
    code, _, err = nas_cli("import-weights", "--format", "ofa", good, "--space", "ofa", "--out", tmp_path / "y.pt")
    assert code == 2 and "another width" in err and len(err.strip().splitlines()) == 1


def test_released_name_without_a_recorded_hash_says_how_to_proceed(monkeypatch, nas_cli, tmp_path):
    from nas import ofa_weights

    monkeypatch.delenv(ofa_weights.SHA256_ENV, raising=False)
    code, _, err = nas_cli("import-weights", "ofa:ofa_mbv3_d234_e346_k357_w1.2", "--out", tmp_path / "z.pt")
    assert code == 2 and "SHA-256" in err and "hanlab.mit.edu" in err and len(err.strip().splitlines()) == 1
    code, _, err = nas_cli("import-weights", "ofa:ofa_mbv3_nope", "--out", tmp_path / "z.pt")
    assert code == 2 and "unknown Once-for-All supernet" in err
