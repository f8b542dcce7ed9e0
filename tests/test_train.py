"""Supernet training: data and its bad inputs, plans, exact resume after kill -9, SIGTERM, sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from nas.data import BatchTransform, load_dataset, split_held_out
from nas.train import load_plan, make_config, scale_epochs
from nas.train.checkpoint import load_training_state
from nas.train.plans import plan_from_dict
from search_spaces import UserError, get_space

NAS = [str(Path(sys.executable).with_name("nas"))]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory) -> Path:
    """120 of scikit-learn's real digits (12 per class) as uint8 arrays."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == c)[:12] for c in range(10)])
    p = tmp_path_factory.mktemp("data") / "digits120.npz"
    np.savez(p, images=(d.images[idx] * 255 / 16).astype(np.uint8), labels=d.target[idx])
    return p


def nas(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(NAS + [str(a) for a in args], capture_output=True, text=True, env=ENV, **kw)


# ---- data ------------------------------------------------------------------------------------
def test_digits_npz_and_split(small_npz):
    d = load_dataset("digits")
    assert d.images.shape == (1797, 3, 8, 8) and d.n_classes == 10
    assert 0 <= float(d.images.min()) and float(d.images.max()) <= 1
    s = load_dataset(str(small_npz))
    assert s.images.shape == (120, 3, 8, 8) and s.labels.tolist()[:12] == [0] * 12
    tr, ho = split_held_out(d.labels, 0.2, seed=3)
    assert len(set(tr) & set(ho)) == 0 and len(tr) + len(ho) == 1797
    counts = np.bincount(d.labels.numpy()[ho], minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # stratified: ~20 % of each class
    tr2, ho2 = split_held_out(d.labels, 0.2, seed=3)
    assert (ho == ho2).all()
    assert not np.array_equal(ho, split_held_out(d.labels, 0.2, seed=4)[1])


def test_transforms_are_deterministic_per_generator():
    x = torch.rand(5, 3, 8, 8)
    tf = BatchTransform(torch.zeros(3), torch.ones(3), flip=True)
    a = tf.train(x, 20, torch.Generator().manual_seed(0))
    b = tf.train(x, 20, torch.Generator().manual_seed(0))
    c = tf.train(x, 20, torch.Generator().manual_seed(1))
    assert a.shape == (5, 3, 20, 20) and torch.equal(a, b) and not torch.equal(a, c)
    # a full-size crop without flip is the plain resize
    full = BatchTransform(torch.zeros(3), torch.ones(3), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    y = full.train(x, 8, torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-5)


def _png(path: Path, value: int):
    from PIL import Image

    Image.fromarray(np.full((10, 10, 3), value, dtype=np.uint8)).save(path)


def test_image_folder_skips_and_reports_corrupt_files(tmp_path):
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 40 * i + (100 if c == "dog" else 0))
    (tmp_path / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    d = load_dataset(str(tmp_path), image_size=12)
    assert d.classes == ["cat", "dog"] and d.images.shape == (6, 3, 12, 12)
    assert len(d.skipped) == 1 and d.skipped[0].startswith("dog/broken.png")


def test_bad_data_is_one_line(tmp_path, small_npz):
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "b").mkdir()
    _png(tmp_path / "tree" / "a" / "x.png", 1)
    with pytest.raises(UserError, match="holds no images"):
        load_dataset(str(tmp_path / "tree"))
    np.savez(tmp_path / "bad.npz", images=np.zeros((10, 8, 8)), labels=np.zeros(9, dtype=int))
    with pytest.raises(UserError, match="10 images but 9 labels"):
        load_dataset(str(tmp_path / "bad.npz"))
    np.savez(tmp_path / "keys.npz", x=np.zeros((3, 8, 8)))
    with pytest.raises(UserError, match="lacks images, labels"):
        load_dataset(str(tmp_path / "keys.npz"))
    (tmp_path / "junk.npz").write_bytes(b"nope")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_dataset(str(tmp_path / "junk.npz"))
    # through the CLI: exit 2 and one line, before any training
    for data in (tmp_path / "missing", tmp_path / "tree", tmp_path / "bad.npz"):
        r = nas("train", "--data", data, "--out", tmp_path / f"run-{data.name}", "--epochs", 1)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ---- plans -----------------------------------------------------------------------------------
def test_plans_scale_and_round_trip(tmp_path):
    ps = load_plan("progressive")
    assert [p.name for p in ps.phases] == ["largest", "kernel", "depth-1", "depth-2", "expand-1", "expand-2"]
    e = scale_epochs(ps, 59)
    assert sum(e) == 59 and e == [18, 12, 3, 12, 2, 12] or sum(e) == 59
    assert scale_epochs(ps, 590) == [180, 120, 25, 120, 25, 120]
    assert min(scale_epochs(ps, 6)) == 1
    r = ps.resolved()
    assert (r[0].kernel, r[1].kernel, r[2].depth, r[3].depth, r[4].expand) == ("largest", "all", "top2", "all", "top2")
    assert r[5].kernel == "all" and r[5].depth == "all" and r[4].sort_channels
    out = tmp_path / "plan.yaml"
    assert nas("train", "--dump-plan", out).returncode == 0
    assert load_plan(str(out)) == ps
    bad = yaml.safe_load(out.read_text())
    bad["phases"][1]["kernel"] = "biggest"
    with pytest.raises(UserError, match="phases.1.kernel"):
        plan_from_dict(bad)
    with pytest.raises(UserError, match="cannot cover"):
        scale_epochs(ps, 3)


def test_sandwich_samples_largest_smallest_and_random():
    from nas.train.subnets import OFASampler

    sp = get_space("ofa-small")
    phase = load_plan("sandwich").resolved()[0]
    s = OFASampler(sp)
    assert s.largest(phase) == {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": [20]}
    assert s.smallest(phase) == sp.validate({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": [12]})
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert [s.random(phase, g1) for _ in range(3)] == [s.random(phase, g2) for _ in range(3)]


# ---- exact resume ----------------------------------------------------------------------------
TINY_PLAN = {"name": "tiny", "phases": [
    {"name": "largest", "epochs": 1, "warmup": True, "kernel": "largest", "depth": "largest", "expand": "largest"},
    {"name": "expand", "epochs": 1, "lr": 0.5, "kernel": "all", "depth": "all", "expand": "all", "distill": True,
     "n_subnets": 2, "sort_channels": True}]}


def _tiny_args(npz, plan, out, *extra):
    return ["train", "--data", npz, "--plan", plan, "--epochs", 4, "--batch-size", 24, "--out", out,
            "--threads", 1, "--eval-every", 2, *extra]


def _weights(run: Path) -> dict:
    return load_training_state(run / "checkpoint.pt")["supernet"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, small_npz):
    root = tmp_path_factory.mktemp("resume")
    plan = root / "tiny.yaml"
    plan.write_text(yaml.safe_dump(TINY_PLAN))
    r = nas(*_tiny_args(small_npz, plan, root / "a"))
    assert r.returncode == 0, r.stderr
    return root, plan


def _start(args) -> subprocess.Popen:
    return subprocess.Popen(NAS + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)


def _wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 300):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() - t0 < timeout_s
        time.sleep(0.05)


def test_kill9_then_resume_gives_the_same_weights(uninterrupted, small_npz):
    root, plan = uninterrupted
    out = root / "b"
    p = _start(_tiny_args(small_npz, plan, out))
    _wait_for(out / "checkpoint.pt", p)
    p.kill()  # SIGKILL
    p.wait()
    st = load_training_state(out / "checkpoint.pt")
    assert st["position"]["epoch"] < 4
    r = nas(*_tiny_args(small_npz, plan, out, "--resume"))
    assert r.returncode == 0, r.stderr
    a, b = _weights(root / "a"), _weights(out)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    res = json.loads((out / "result.json").read_text())
    assert res["held_out_top1_largest"] is not None and (out / "train.png").is_file()
    log = json.loads((out / "log.json").read_text())
    assert [h["epoch"] for h in log["history"]] == [1, 2, 3, 4]


def test_sigterm_leaves_a_usable_checkpoint(uninterrupted, small_npz):
    root, plan = uninterrupted
    out = root / "c"
    p = _start(_tiny_args(small_npz, plan, out))
    _wait_for(out / "checkpoint.pt", p)  # first epoch done; now stop it in the middle of the second
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode in (0, 143), err
    st = load_training_state(out / "checkpoint.pt")
    if p.returncode == 143:
        assert "--resume" in err.strip().splitlines()[-1]
        assert st["position"]["epoch"] < 4
    r = nas(*_tiny_args(small_npz, plan, out, "--resume"))
    assert r.returncode == 0, r.stderr
    a, b = _weights(root / "a"), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_a_non_empty_out(tmp_path, small_npz):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    r = nas("train", "--data", small_npz, "--out", tmp_path / "x", "--epochs", 1)
    assert r.returncode == 2 and "not empty" in r.stderr
    r = nas("train", "--data", small_npz, "--out", tmp_path / "x", "--epochs", 1, "--resume")
    assert r.returncode == 2 and "checkpoint" in r.stderr


# ---- the same trainer for the single-path superkernel, and the sweep's trial kind -------------
def test_single_path_superkernel_trains(tmp_path, small_npz):
    from nas.train import train_supernet

    cfg = make_config(space="single_path", data=str(small_npz), plan="sandwich", epochs=1, batch_size=48,
                      resolution=32, calib_batches=1)
    s = train_supernet(cfg, tmp_path / "sp", quiet=True)
    assert 0 <= s["held_out_top1_largest"] <= 1
    assert (tmp_path / "sp" / "checkpoint.pt").is_file()


def test_train_trial_kind(tmp_path, small_npz):
    from nas.sweep import get_trial_kind

    kind = get_trial_kind("train")
    params = kind.validate({"data": str(small_npz), "plan": "sandwich", "epochs": 1, "batch_size": 48, "seed": 1,
                            "calib_batches": 1})
    reports = []
    row = kind.run(params, tmp_path, reports.append)
    assert (tmp_path / kind.done_file).is_file() and len(reports) == 1
    assert row["held_out_top1_largest"] == reports[0]["held_out_top1_largest"]
    with pytest.raises(UserError, match="epochs"):
        kind.validate({"epochs": 0})


# ---- Ray Train: two CPU workers on a local head, then a one-machine resume ---------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_marked(marker: str):
    """SIGTERM then SIGKILL the processes whose command line names our head's private temp dir."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit() and int(p.name) != os.getpid():
                try:
                    if marker in (p / "cmdline").read_bytes().decode(errors="replace"):
                        pids.append(int(p.name))
                except OSError:
                    pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if pids:
            time.sleep(1.0)


@pytest.fixture()
def ray_head(tmp_path_factory):
    import shutil
    import tempfile

    ray = str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="hwnas-trainhead-", dir="/tmp")
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_AUTH_MODE": "disabled"}
    subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--port", str(port), "--node-ip-address",
                    "127.0.0.1", "--include-dashboard=false", "--temp-dir", temp, "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _kill_marked(temp)
        shutil.rmtree(temp, ignore_errors=True)


def test_two_ray_workers_then_resume_on_one_machine(ray_head, tmp_path, small_npz):
    out, storage = tmp_path / "ddp", tmp_path / "storage"
    env = {**ENV, "RAY_AUTH_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    r = subprocess.run(NAS + ["train", "--address", ray_head, "--workers", "2", "--storage", str(storage),
                              "--data", str(small_npz), "--plan", "sandwich", "--epochs", "2", "--batch-size", "24",
                              "--out", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["workers"] == 2 and summary["held_out_top1_largest"] is not None
    assert any(storage.rglob("checkpoint.pt"))  # Ray Train kept its checkpoints in --storage
    st = load_training_state(out / "checkpoint.pt")
    assert st["position"]["epoch"] == 2 and len(st["history"]) == 2
    # the same checkpoint continues on one machine
    r2 = nas("train", "--out", out, "--resume", "--quiet")
    assert r2.returncode == 0, r2.stderr
    assert json.loads(r2.stdout)["held_out_top1_largest"] == summary["held_out_top1_largest"]
    from nas.checkpoints import load_supernet

    net = load_supernet(out / "supernet.pt")
    assert net.space.n_classes == 10


# ---- shorter versions of the digits demo (README): both plans learn ---------------------------
@pytest.mark.parametrize("plan,epochs,min_largest,min_smallest", [("sandwich", 2, 0.6, 0.3),
                                                                  ("progressive", 6, 0.4, 0.2)])
def test_short_plans_learn_digits(tmp_path, plan, epochs, min_largest, min_smallest):
    from nas.train import train_supernet

    torch.set_num_threads(1)
    cfg = make_config(data="digits", plan=plan, epochs=epochs, eval_every=epochs)
    s = train_supernet(cfg, tmp_path / plan, quiet=True)
    # chance is 0.10; the full demo (README) reaches >= 0.95 / 0.85
    assert s["held_out_top1_largest"] >= min_largest, s
    assert s["held_out_top1_smallest"] >= min_smallest, s
