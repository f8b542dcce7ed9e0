"""The Once-for-All supernet: subnets through it equal the extracted plain networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.checkpoints import load_supernet, save_supernet
from search_spaces import UserError, get_space
from search_spaces.elastic import shrink_kernel
from search_spaces.ofa.supernet import OFASupernet, recalibrate_bn



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small inputs: one intra-op thread is as fast and does not spin on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and affine terms, and kernel transforms away from identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(1 + torch.randn(n, generator=g) * 0.2)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
        for name, p in net.named_parameters():
            if "kernel_transform" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
            if name.startswith("classifier"):
                p.mul_(20)  # logits of order 1, so equality checks are not trivially tiny
    return net


@pytest.fixture(scope="module")
def supernet() -> OFASupernet:
    torch.manual_seed(0)
    return randomise(get_space("ofa").supernet())


def archs(space, n, seed=0):
    ends = [OFASupernet.largest_arch(), OFASupernet.smallest_arch()]
    return ends + space.sample(np.random.default_rng(seed), n - 2)


def test_extracted_subnets_equal_the_supernet_in_eval(supernet):
    space = get_space("ofa")
    supernet.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    for i, arch in enumerate(archs(space, 50)):
        supernet.set_active(arch)
        sub = supernet.extract()
        assert type(sub) is type(space.build(arch)) and not sub.training
        space.build(arch).load_state_dict(sub.state_dict())  # strict: same keys and shapes
        xi = x if i % 2 else F.interpolate(x, size=96)  # any resolution
        with torch.no_grad():
            a, b = supernet(xi), sub(xi)
        assert a.abs().mean() > 0.1
        assert (a - b).abs().max().item() <= 1e-5, arch


def test_width_1_0_space_too():
    space = get_space("ofa-w1.0")
    net = randomise(space.supernet(), seed=3).eval()
    x = torch.randn(1, 3, 72, 72)
    for arch in archs(space, 4, seed=5):
        net.set_active(arch)
        with torch.no_grad():
            assert torch.allclose(net(x), net.extract(arch)(x), atol=1e-5, rtol=0)


def _block_index(arch, static_index):
    """Which supernet layer a static block is: blocks[0] is the fixed first block, then 4 slots a stage."""
    if static_index == 0:
        return 0
    k = static_index - 1
    for s, d in enumerate(arch["d"]):
        if k < d:
            return 1 + 4 * s + k
        k -= d
    raise IndexError(static_index)


def _train_step(net, x, y):
    net.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # the same dropout mask for both networks
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return loss.item()


@pytest.mark.parametrize("which", ["largest", "smallest", "random"])
def test_a_training_step_gives_the_same_loss_and_gradients(which):
    space = get_space("ofa")
    net = randomise(space.supernet(), seed=7).train()
    arch = {"largest": net.largest_arch(), "smallest": net.smallest_arch(),
            "random": space.sample(np.random.default_rng(11), 1)[0]}[which]
    net.set_active(arch)
    sub = net.extract(arch)
    assert sub.training
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(4, 3, 64, 64, generator=g), torch.randint(0, 1000, (4,), generator=g)
    loss_super, loss_sub = _train_step(net, x, y), _train_step(sub, x, y)
    assert abs(loss_super - loss_sub) <= 1e-5

    arch = space.validate(arch)
    own = dict(net.named_parameters())
    transformed = 0
    for key, p in sub.named_parameters():
        if key.startswith("blocks."):
            bi, rest = key[len("blocks."):].split(".", 1)
            layer_key = f"blocks.{_block_index(arch, int(bi))}"
            full = own[f"{layer_key}.{rest}"]
        else:
            layer_key, full = None, own[key]
        if key.endswith("depthwise.conv.weight") and p.shape[-1] != full.shape[-1]:
            # Gradient w.r.t. the derived kernel, pulled back through crop + matrices by autograd.
            layer = net.get_submodule(layer_key)
            w = full.detach().clone().requires_grad_()
            mats = [(k, m.detach().clone().requires_grad_()) for k, m in layer._matrices()]
            kernel = shrink_kernel(w[:p.shape[0]], p.shape[-1], mats)
            used = [m for k, m in mats if k >= p.shape[-1]]
            expected = torch.autograd.grad(kernel, [w, *used], p.grad)
            assert torch.allclose(full.grad, expected[0], atol=1e-5, rtol=1e-4)
            names = {int(n.split("to")[1]): n for n in layer.kernel_transform}
            for (k, m), e in zip(mats, expected[1:]):
                got = layer.kernel_transform[names[k]].grad
                assert got is not None and got.abs().sum() > 0  # the matrices learn
                assert torch.allclose(got, e, atol=1e-5, rtol=1e-4)
                transformed += 1
            continue
        region = tuple(slice(0, n) for n in p.shape)
        assert torch.allclose(full.grad[region], p.grad, atol=1e-5, rtol=1e-4), key
        outside = full.grad.clone()
        outside[region] = 0
        assert not outside.any(), key  # inactive channels get no gradient
    assert transformed > 0 or which == "largest"

    # BatchNorm running statistics were updated in the shared storage exactly as in the subnet.
    for key, t in sub.state_dict().items():
        if key.endswith("running_mean") and key.startswith("blocks."):
            bi, rest = key[len("blocks."):].split(".", 1)
            shared = net.state_dict()[f"blocks.{_block_index(arch, int(bi))}.{rest}"]
            assert torch.allclose(shared[:t.shape[0]], t, atol=1e-6)


def test_eval_cache_follows_weight_updates(supernet):
    space = get_space("ofa")
    net = randomise(space.supernet(), seed=4)
    arch = space.sample(np.random.default_rng(3), 1)[0]
    net.set_active(arch).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    _train_step(net, torch.randn(2, 3, 64, 64), torch.tensor([1, 2]))
    opt.step()
    net.eval()  # re-derives the frozen tensors from the updated weights
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, want = net(x), net.extract()(x)
        # The SGD step on random weights makes the logits large (~1e5); the eval path folds
        # BatchNorm into the convolutions, so compare to float rounding of their scale.
        assert torch.allclose(got, want, atol=1e-5 * float(want.abs().max()), rtol=0)
        net.load_state_dict(supernet.state_dict())
        assert torch.allclose(net(x), supernet.set_active(arch).eval()(x), atol=1e-5, rtol=0)


def test_sorting_channels_keeps_each_trained_width_function():
    space = get_space("ofa")
    net = randomise(space.supernet(), seed=5).eval()
    for p in net.parameters():  # break the symmetry of default init so the order changes
        p.data.add_(torch.randn_like(p) * 0.01)
    x = torch.randn(1, 3, 64, 64)
    largest = net.largest_arch()
    e4 = dict(largest, e=[4] * 20)
    with torch.no_grad():
        before = [net.set_active(a)(x) for a in (largest, e4)]
        net.sort_channels(keep_expands=[4])
        after = [net.set_active(a)(x) for a in (largest, e4)]
        for b, a in zip(before, after):
            assert torch.allclose(b, a, atol=1e-4, rtol=1e-4)
        net.sort_channels()
        assert torch.allclose(net.set_active(largest)(x), before[0], atol=1e-4, rtol=1e-4)
    w = net.blocks[5].project.conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(w[:-1] >= w[1:])


def test_bn_recalibration_writes_subnet_statistics(supernet):
    space = get_space("ofa")
    net = randomise(space.supernet(), seed=6).eval()
    arch = space.sample(np.random.default_rng(8), 1)[0]
    g = torch.Generator().manual_seed(9)
    batches = [(torch.randn(4, 3, 64, 64, generator=g), None) for _ in range(3)]
    sub = recalibrate_bn(net, batches, arch=arch)
    assert not sub.training and not net.training
    stem_out = torch.cat([sub.stem.conv(b[0]) for b in batches])
    with torch.no_grad():
        assert torch.allclose(sub.stem.bn.running_mean, stem_out.mean((0, 2, 3)), atol=1e-5)
        x = batches[0][0][:1]
        want = sub(x)  # the supernet's eval path folds BatchNorm: equal to rounding of the logits' scale
        assert torch.allclose(net.set_active(arch)(x), want, atol=1e-5 * float(want.abs().max()), rtol=0)
    plain = recalibrate_bn(space.build(arch).eval(), [b[0] for b in batches])  # any plain network
    with torch.no_grad():
        plain_out = torch.cat([plain.stem.conv(b[0]) for b in batches])
    assert torch.allclose(plain.stem.bn.running_mean, plain_out.mean((0, 2, 3)), atol=1e-5)
    with pytest.raises(UserError):
        recalibrate_bn(space.build(arch), [])


def test_checkpoint_round_trip(tmp_path, supernet):
    arch = get_space("ofa").sample(np.random.default_rng(2), 1)[0]
    supernet.eval().set_active(arch)
    path = save_supernet(supernet, tmp_path / "ofa.pt")
    loaded = load_supernet(path, space="ofa").eval()
    assert loaded.active_arch == supernet.active_arch
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.extract(arch)(x), supernet.extract(arch)(x))
        assert torch.equal(loaded(x), supernet(x))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def _one_line_error(fn) -> str:
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_wrong_space_and_corrupted_checkpoints_are_one_line_errors(tmp_path):
    small = get_space("ofa-w1.0").supernet()
    path = save_supernet(small, tmp_path / "w10.pt")
    assert "ofa-w1.0" in _one_line_error(lambda: load_supernet(path, space="ofa"))
    assert load_supernet(path).space_name == "ofa-w1.0"

    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    for name in ("cut.pt", "junk.pt", "other.pt", "missing.pt"):
        _one_line_error(lambda: load_supernet(tmp_path / name))
    ckpt = small.checkpoint()
    ckpt["state_dict"]["classifier.weight"] = torch.zeros(3, 3)
    torch.save(ckpt, tmp_path / "shapes.pt")
    _one_line_error(lambda: load_supernet(tmp_path / "shapes.pt"))


def test_eval_forward_runs_no_more_than_the_static_networks_ops(supernet):
    """All per-arch work happened in set_active: no slicing or kernel transforms per forward.

    The eval path runs the static net's convolutions (BatchNorm folded into them, activations
    in place), so every op it runs the static net runs at least as often, and the
    convolutions are the same number."""
    from collections import Counter

    from torch.profiler import profile

    def aten_ops(fn):
        with profile() as prof:
            fn()
        names = (e.name for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None)
        return Counter(n[:-1] if n.endswith("_") else n for n in names)  # relu_ counts as relu

    arch = get_space("ofa").sample(np.random.default_rng(4), 1)[0]
    supernet.eval().set_active(arch)
    sub = supernet.extract()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        supernet(x)  # the first forward at a resolution keeps the depthwise crops for small maps
        ours, static = aten_ops(lambda: supernet(x)), aten_ops(lambda: sub(x))
    assert ours["aten::conv2d"] == static["aten::conv2d"] > 0
    assert all(n <= static[op] for op, n in ours.items()), ours - static


def test_a_deep_copy_runs_the_same_subnet(supernet):
    import copy

    arch = get_space("ofa").sample(np.random.default_rng(6), 1)[0]
    supernet.eval().set_active(arch)
    twin = copy.deepcopy(supernet)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(twin(x), supernet(x))
        for p in twin.parameters():
            p.zero_()
        twin.refresh()
        assert not torch.equal(twin(x), supernet(x))
