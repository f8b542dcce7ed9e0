"""Distilling an accuracy estimator into hwnas's own JSON MLP (``nas fit-predictor --teacher``).

A teacher (any estimator spec, e.g. Once-for-All's released predictor) labels archs that hwnas
samples itself; an MLP over ``space.features(X)`` is fitted to those labels and saved in the
``predictor:PATH`` format, with its provenance: the teacher, the teacher file's SHA-256, how the
archs were drawn, the command that rebuilds it, and its fidelity on archs it was not fitted on
(overall, and among archs of nearly equal latency on named devices, which is what a search must
rank).

Sampling, all canonical archs of the space:

* uniform (a quarter): every dim drawn uniformly (what random search and the first generation see);
* skewed (an eighth): per arch and dim, choice probabilities drawn from a Dirichlet(0.4), so
  extreme archs (all large kernels, all deep, ...) are covered;
* cost-stratified (an eighth): from a pool of uniform and skewed archs, equal numbers per
  (resolution, MACs-decile) cell, so small and large nets at every resolution are represented;
* search trajectories (half): archs that hwnas's evolution visits when it maximises the teacher
  (a user's default budget of evaluations each) under MACs, every shipped device that prices the
  space, and synthetic devices (each block's MACs times a random per-block factor, so the
  frontiers of devices we have no table for are covered too), each at budgets log-evenly spaced
  over its whole cost range; half of them every search's best archs, half a random draw. A
  search's winners sit where the teacher is highest for their cost: a region uniform samples
  hardly reach and where a student fitted on them alone was ~1 point off.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from search_spaces.errors import UserError

DIRICHLET_ALPHA = 0.4
N_MAC_BINS = 10
BAND_FRAC = 0.05  # a latency band: archs within 5 % of the named budget


def _searched_table(space) -> tuple[np.ndarray, np.ndarray]:
    """(per-dim number of searched values, (n_dims, max) table of their choice indices)."""
    counts = np.array([len(d.search_index) for d in space.dims])
    table = np.zeros((len(counts), counts.max()), np.int64)
    for j, d in enumerate(space.dims):
        table[j, :counts[j]] = d.search_index
    return counts, table


def skewed_archs(space, rng: np.random.Generator, n: int) -> np.ndarray:
    """n archs whose per-dim choice probabilities are themselves random (Dirichlet), vectorised."""
    counts, table = _searched_table(space)
    width = int(counts.max())
    g = rng.gamma(DIRICHLET_ALPHA, size=(n, len(counts), width))
    g[:, np.arange(width)[None, :] >= counts[:, None]] = 0.0
    cdf = np.cumsum(g / g.sum(-1, keepdims=True), axis=-1)
    pick = np.minimum((rng.random((n, len(counts), 1)) > cdf).sum(-1), counts - 1)
    return space.canonical(table[np.arange(len(counts)), pick])


def stratified_archs(space, rng: np.random.Generator, n: int) -> np.ndarray:
    """n archs spread evenly over (resolution, MACs decile) cells of a uniform + skewed pool."""
    pool = np.concatenate([space.sample_encoded(rng, 4 * n), skewed_archs(space, rng, 4 * n)])
    res = space.resolution(pool)
    macs = np.log(np.asarray(space.macs(pool), dtype=np.float64))
    cells = []
    for r in np.unique(res):
        at = np.flatnonzero(res == r)
        edges = np.quantile(macs[at], np.linspace(0, 1, N_MAC_BINS + 1)[1:-1])
        bins = np.searchsorted(edges, macs[at])
        cells += [at[bins == b] for b in range(N_MAC_BINS) if (bins == b).any()]
    per = -(-n // len(cells))
    picked = np.concatenate([rng.choice(c, size=min(per, len(c)), replace=False) for c in cells])
    return pool[rng.permutation(picked)[:n]]


class _Recorder:
    """The teacher, remembering every batch a search asks it to score."""

    def __init__(self, teacher):
        self.teacher, self.seen = teacher, []
        self.name = "teacher"

    def predict(self, X):
        y = np.asarray(self.teacher.predict(X), dtype=np.float64)
        self.seen.append((np.asarray(X), y))
        return y

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """Every distinct arch scored since the last take, with its score."""
        X = np.concatenate([x for x, _ in self.seen])
        y = np.concatenate([v for _, v in self.seen])
        self.seen = []
        X, first = np.unique(X, axis=0, return_index=True)
        return X, y[first]


class _BlockCost:
    """A synthetic device: each block's MACs times a per-block factor (``predict`` in pseudo-ms)."""

    def __init__(self, space, factors: np.ndarray | None, name: str):
        macs = np.asarray(space.block_costs()[0], dtype=np.float64) / 1e6
        self.space, self.name = space, name
        self.cost = np.append(macs * (1.0 if factors is None else factors), 0.0)  # -1: no block

    def predict(self, X):
        return self.cost[self.space.block_matrix(np.asarray(X))].sum(axis=1)


class _Macs:
    def __init__(self, space):
        self.space, self.name = space, "macs"

    def predict(self, X):
        return np.asarray(self.space.macs(np.asarray(X)), dtype=np.float64) / 1e6


class _DeviceCost:
    """A shipped device's latency predictor; archs with unpriced blocks cost NaN (infeasible)."""

    def __init__(self, predictor, name: str):
        self.predictor, self.name = predictor, name

    def predict(self, X):
        return self.predictor.predict(np.asarray(X), missing="nan")


def shipped_device_costs(space) -> list:
    """Every device profile shipped with hwnas that prices ``space`` (user profiles are left out,
    so a rebuild does not depend on what a machine has imported)."""
    import warnings

    from latency_predictors.predictor import LatencyPredictor
    from latency_predictors.registry import list_profiles

    out = []
    for reg in list_profiles():
        if reg.origin != "shipped":
            continue
        with warnings.catch_warnings():  # a table measured on another host still prices the space
            warnings.simplefilter("ignore")
            try:
                out.append(_DeviceCost(LatencyPredictor(reg.profile, space), reg.profile.name))
            except (UserError, NotImplementedError, KeyError, ValueError):
                continue  # this device has no table for the space
    return out


N_SYNTHETIC_DEVICES = 7
N_TRAJECTORY_BUDGETS = 9
MIN_TRAJECTORY_EVALS = 5000


def trajectory_budgets(cost, probe: np.ndarray, n: int = N_TRAJECTORY_BUDGETS) -> np.ndarray:
    """``n`` budgets log-evenly spaced strictly between the cheapest and the dearest probe arch.

    Users search at any budget the device allows, the extremes included (a 30 ms budget on a
    phone sits below 99.7 % of uniform archs); budgets at cost quantiles of uniform archs left
    both ends untrained, and a student fitted that way was a point off the teacher there.
    """
    c = np.asarray(cost.predict(probe), dtype=np.float64)
    c = c[np.isfinite(c) & (c > 0)]
    return np.geomspace(c.min(), c.max(), n + 2)[1:-1]


ELITE_FRAC = 0.5


def trajectory_archs(space, teacher, rng: np.random.Generator, n: int, log=None,
                     evals: int | None = None, n_budgets: int = N_TRAJECTORY_BUDGETS) -> np.ndarray:
    """n distinct archs visited by evolution maximising ``teacher`` under cost budgets.

    The costs: MACs, every shipped device that prices the space, and synthetic devices; each at
    a log-even grid of budgets across its whole range (``trajectory_budgets``). Each search runs
    ``evals`` evaluations (default: a user's default budget, so it gets as far as a user's search
    does). Half the archs kept are every search's best (its share of ``ELITE_FRAC * n``), the rest
    drawn at random from all visited: a search's best archs sit in narrow regions around the
    frontier that a random draw of what it visited hardly hits (the teacher's top picks at 40 ms
    on pixel were 9 of 46 choices away from any training arch, and under-rated by 0.7 points).
    """
    from nas.search import DEFAULT_BUDGET, search

    try:
        n_blocks = len(space.block_costs()[0])
        costs = [_BlockCost(space, None, "macs")] + shipped_device_costs(space) + [
            _BlockCost(space, np.exp(rng.normal(0.0, 0.5, n_blocks)), f"synthetic-{i}")
            for i in range(N_SYNTHETIC_DEVICES)]
    except NotImplementedError:  # a space without per-block costs: MACs only
        costs = [_Macs(space)]
    probe = np.concatenate([space.sample_encoded(rng, 4096), skewed_archs(space, rng, 4096)])
    runs = [(c, float(b)) for c in costs for b in trajectory_budgets(c, probe, n_budgets)]
    per_run = DEFAULT_BUDGET if evals is None else evals
    n_elite = int(np.ceil(ELITE_FRAC * n / len(runs)))
    rec = _Recorder(teacher)
    elites, rest = [], []
    t0 = time.perf_counter()
    for i, (cost, budget) in enumerate(runs):
        search(space, cost, budget, accuracy=rec, budget=per_run, seed=int(rng.integers(2**31)), plot=False)
        Xr, yr = rec.take()
        feasible = np.asarray(cost.predict(Xr), dtype=np.float64) <= budget
        order = np.flatnonzero(feasible)[np.argsort(-yr[feasible], kind="stable")]
        elites.append(Xr[order[:n_elite]])
        rest.append(np.delete(Xr, order[:n_elite], axis=0))
        if log is not None and ((i + 1) % 10 == 0 or i + 1 == len(runs)):
            el = time.perf_counter() - t0
            log(f"search trajectories: {i + 1}/{len(runs)} searches ({len(costs)} costs x "
                f"{n_budgets} budgets, {per_run} evaluations each)  elapsed {el:.0f}s  "
                f"eta {el / (i + 1) * (len(runs) - i - 1):.0f}s")
    E = np.unique(np.concatenate(elites), axis=0)
    R = np.unique(np.concatenate(rest), axis=0)
    # an arch elite in one run and plain in another counts once, as an elite
    R = R[~_rows_in(R, E)]
    R = R[rng.permutation(len(R))[:max(0, n - len(E))]]
    X = np.concatenate([E[:n], R])
    return X[rng.permutation(len(X))]


def _rows_in(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Mask of the rows of A that are also rows of B (integer matrices), vectorised."""
    both = np.unique(np.concatenate([np.unique(A, axis=0), np.unique(B, axis=0)]), axis=0, return_counts=True)
    common = both[0][both[1] > 1]
    if not len(common):
        return np.zeros(len(A), bool)
    v = np.ascontiguousarray(A).view([("", A.dtype)] * A.shape[1]).ravel()
    c = np.ascontiguousarray(common.astype(A.dtype)).view([("", A.dtype)] * A.shape[1]).ravel()
    return np.isin(v, c)


def distillation_archs(space, rng: np.random.Generator, n: int, teacher=None,
                       log=None, evals: int | None = None,
                       n_budgets: int = N_TRAJECTORY_BUDGETS) -> tuple[np.ndarray, dict]:
    """The archs to label (see the module doc) and how many of each kind."""
    n_traj = n // 2 if teacher is not None else 0
    n_u = (n - n_traj) // 2
    n_s = (n - n_traj - n_u) // 2
    parts = {"uniform": space.sample_encoded(rng, n_u), "skewed": skewed_archs(space, rng, n_s),
             "cost_stratified": stratified_archs(space, rng, n - n_traj - n_u - n_s)}
    if n_traj:
        parts["search_trajectories"] = trajectory_archs(space, teacher, rng, n_traj, log, evals, n_budgets)
    return np.concatenate(list(parts.values())), {k: int(len(v)) for k, v in parts.items()}


def train_mlp(F: np.ndarray, t: np.ndarray, hidden: Sequence[int], epochs: int, seed: int,
              batch_size: int = 512, max_lr: float = 2e-3,
              progress: Callable[[int, float], None] | None = None,
              init: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """A ReLU MLP fitted to standardised targets ``t`` with Adam and a one-cycle learning rate.

    torch trains it (hundreds of thousands of rows in minutes on two cores, where scikit-learn's
    MLP would take far longer); the weights come back as numpy (W as in x @ W + b). ``init``
    starts from earlier weights (a refinement round).
    """
    import torch

    # One thread: batches of 512 rows are too small to share, and on a busy machine idle-spinning
    # worker threads made an epoch 20x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(torch, F, t, hidden, epochs, seed, batch_size, max_lr, progress, init)
    finally:
        torch.set_num_threads(threads)


def _train(torch, F, t, hidden, epochs, seed, batch_size, max_lr, progress, init):
    torch.manual_seed(seed)
    layers, width = [], F.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, 1))
    net = torch.nn.Sequential(*layers)
    if init is not None:
        with torch.no_grad():
            for m, (W, b) in zip([m for m in net if isinstance(m, torch.nn.Linear)], init):
                m.weight.copy_(torch.from_numpy(np.asarray(W, dtype=np.float32).T))
                m.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float32)))
    Ft, tt = torch.from_numpy(np.ascontiguousarray(F, dtype=np.float32)), torch.from_numpy(t.astype(np.float32))
    steps_per_epoch = max(1, len(F) // batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=max_lr / 25)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        perm = torch.randperm(len(F), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            loss = ((net(Ft[idx])[:, 0] - tt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if progress is not None:
            progress(epoch + 1, total / steps_per_epoch)
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linear]


def parse_band(text: str) -> tuple[str, float]:
    """``DEVICE:BUDGET`` (e.g. ``pixel:40ms``) -> (device, budget in ms)."""
    from latency_predictors.units import parse_latency_ms

    device, sep, budget = text.rpartition(":")
    if not sep or not device:
        raise UserError(f"--heldout-band {text!r}: expected DEVICE:BUDGET, e.g. pixel:40ms")
    return device, parse_latency_ms(budget)


def fidelity(space, student, teacher, X: np.ndarray, bands: Sequence[tuple[str, float]] = (),
             band_pool: np.ndarray | None = None, n_band: int = 10_000) -> dict:
    """Student vs teacher on held-out archs: Spearman, MAE (top-1 points), and per latency band.

    A band is the archs of ``band_pool`` whose latency on the device lies within 5 % of the
    budget (the first ``n_band`` of them): how well the student ranks nets of equal cost.
    """
    from latency_predictors.predictor import LatencyPredictor

    from .learned import spearman

    ys, yt = student.predict(X), teacher.predict(X)
    out = {"n_archs": int(len(X)), "spearman": round(spearman(ys, yt), 4),
           "mae_top1_points": round(100 * float(np.mean(np.abs(ys - yt))), 4),
           "max_abs_err_top1_points": round(100 * float(np.max(np.abs(ys - yt))), 4), "bands": []}
    for device, budget_ms in bands:
        pred = LatencyPredictor(device, space)
        lat = pred.predict(band_pool, missing="nan")
        inside = band_pool[np.abs(lat - budget_ms) <= BAND_FRAC * budget_ms][:n_band]
        if len(inside) < 10:
            raise UserError(f"too few held-out archs within 5 % of {budget_ms:g} ms on {device} "
                            f"({len(inside)}); choose a budget the space reaches")
        out["bands"].append({"device": pred.profile.name, "budget_ms": budget_ms, "within_frac": BAND_FRAC,
                             "n_archs": int(len(inside)),
                             "spearman": round(spearman(student.predict(inside), teacher.predict(inside)), 4)})
    return out


def _file_sha256(estimator) -> str | None:
    """SHA-256 of the file a teacher was loaded from (its ``path``), when it has one."""
    p = getattr(estimator, "path", None)
    if p is None or not Path(p).is_file():
        return None
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def distill(space, teacher: str, out: str | Path, n_samples: int = 200_000, n_heldout: int = 10_000,
            hidden: Sequence[int] = (256, 256), epochs: int = 30, seed: int = 0, refine: int = 1,
            bands: Sequence[str] = (), description: str | None = None, metric: str | None = None,
            trajectory_evals: int | None = None, command: str | None = None, log: Callable[[str], None] | None = None,
            members: int = 1, trajectory_budgets_n: int = N_TRAJECTORY_BUDGETS) -> dict:
    """Fit hwnas's MLP to ``teacher``'s labels on sampled archs, save it with provenance to ``out``.

    ``members`` > 1 fits that many MLPs on the same archs from different seeds and saves their
    mean: each student errs by a few tenths of a point in its own places near the teacher's best
    archs, and a search maximising one student lands on its own over-rated peak; the mean's errors
    are smaller there. Refinement searches maximise the mean, and every member trains on what
    they visit.
    """
    from search_spaces import get_space

    from . import describe, get_estimator
    from .learned import LearnedPredictor

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    space = get_space(space)
    if n_samples < 1000 or n_heldout < 100:
        raise UserError(f"--samples must be >= 1000 and --heldout >= 100 (got {n_samples}, {n_heldout})")
    if epochs < 1 or not hidden or min(hidden) < 1:
        raise UserError("--epochs must be >= 1 and --hidden a comma list of positive layer widths")
    if isinstance(members, bool) or not isinstance(members, (int, np.integer)) or not 1 <= members <= 16:
        raise UserError(f"--members must be an integer from 1 to 16 (got {members!r})")
    if isinstance(trajectory_budgets_n, bool) or not isinstance(trajectory_budgets_n, (int, np.integer)) \
            or not 1 <= trajectory_budgets_n <= 100:
        raise UserError(f"--trajectory-budgets must be an integer from 1 to 100 (got {trajectory_budgets_n!r})")
    from nas.search import DEFAULT_BUDGET

    teacher_evals = DEFAULT_BUDGET if trajectory_evals is None else int(trajectory_evals)
    if teacher_evals < 100:
        raise UserError(f"--trajectory-evals must be >= 100 (got {teacher_evals})")
    student_evals = min(MIN_TRAJECTORY_EVALS, teacher_evals)
    band_specs = [parse_band(b) for b in bands]
    teacher_est = get_estimator(teacher, space)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    X, counts = distillation_archs(space, rng, n_samples, teacher_est, log, evals=teacher_evals,
                                   n_budgets=trajectory_budgets_n)
    y = np.asarray(teacher_est.predict(X), dtype=np.float64)
    # Held-out archs come from their own seeded stream: uniform, as a user's random archs would be.
    held_rng = np.random.default_rng([seed, 1])
    X_held = space.sample_encoded(held_rng, n_heldout)
    band_pool = space.sample_encoded(held_rng, 40 * n_heldout) if band_specs else None
    log(f"labelled {len(X)} archs with {teacher} ({counts}) in {time.perf_counter() - t0:.1f} s")

    y_mean, y_scale = float(y.mean()), float(y.std() or 1.0)
    F = space.features(X)
    t_fit = time.perf_counter()

    phase = {"epochs": epochs, "member": 0}
    # member k's seed; member 0 trains exactly as a single student does
    member_seeds = [seed + 1000 * k for k in range(members)]

    def progress(epoch, loss):
        el = time.perf_counter() - t_fit
        n, k = phase["epochs"], phase["member"]
        done, total = k * n + epoch, members * n
        who = f"member {k + 1}/{members}  " if members > 1 else ""
        log(f"{who}epoch {epoch}/{n}  train MSE (standardised) {loss:.5f}  elapsed {el:.0f}s  "
            f"eta {el / done * (total - done):.0f}s")

    def train_members(F, t, n_epochs, offset, init):
        out = []
        for k, s in enumerate(member_seeds):
            phase["member"] = k
            out.append(train_mlp(F, t, hidden, n_epochs, s + offset, progress=progress,
                                 init=None if init is None else init[k]))
        return out

    trained = train_members(F, (y - y_mean) / y_scale, epochs, 0, None)
    student = LearnedPredictor.from_members(space, trained, y_mean, y_scale, seed=seed)
    # Refinement: a search maximising the student lands where the student over-rates archs (the
    # winner's curse); the archs its searches visit, labelled by the teacher, correct exactly that.
    for r in range(refine):
        # shallower searches than the teacher's: the student's errors show early (its own picks
        # were within 0.2 points of the teacher's score), and its searches are the slow part
        X_new = trajectory_archs(space, student, rng, n_samples // 4, log, evals=student_evals,
                                 n_budgets=trajectory_budgets_n)
        X = np.concatenate([X, X_new])
        y = np.concatenate([y, np.asarray(teacher_est.predict(X_new), dtype=np.float64)])
        counts[f"student_trajectories_round{r + 1}"] = int(len(X_new))
        F = space.features(X)
        t_fit = time.perf_counter()
        phase["epochs"] = max(1, epochs // 2)
        log(f"refinement round {r + 1}/{refine}: {len(X_new)} archs the student's searches visit, "
            f"labelled by the teacher; training on {len(X)}")
        trained = train_members(F, (y - y_mean) / y_scale, max(1, epochs // 2), r + 1, trained)
        student = LearnedPredictor.from_members(space, trained, y_mean, y_scale, seed=seed)
    fid = fidelity(space, student, teacher_est, X_held, band_specs, band_pool)
    tinfo = describe(teacher_est)
    meta = {
        "kind": "mlp", "space": space.name, "seed": seed, "hidden": list(hidden), "members": members,
        "member_seeds": member_seeds, "epochs": epochs,
        "refine_rounds": refine, "refine_epochs": max(1, epochs // 2),
        "trajectory_evals": {"teacher": teacher_evals, "student": student_evals},
        "trajectory_budgets": trajectory_budgets_n,
        "n_train": int(len(X)), "sampling": counts,
        "sampling_note": "uniform; skewed (per-arch Dirichlet(0.4) choice probabilities); "
                         "cost-stratified (equal counts per resolution x MACs decile); search trajectories "
                         "(distinct archs visited by evolution maximising the teacher under MACs, every shipped device "
                         f"that prices the space and {N_SYNTHETIC_DEVICES} synthetic devices, each at {trajectory_budgets_n} "
                         "budgets log-evenly spaced across its whole cost range); per refinement round, the distinct "
                         "archs visited by the same searches maximising the student, labelled by the teacher, "
                         "then training continues from the student's weights for half the epochs",
        "teacher": teacher, "teacher_name": tinfo["name"], "teacher_source": tinfo["source"],
        "teacher_sha256": _file_sha256(teacher_est),
        "heldout": dict(fid, note=f"{n_heldout} uniform archs from a seed stream the training archs "
                                  "do not use; bands drawn from a further pool"),
        "heldout_spearman": fid["spearman"], "heldout_mae_top1_points": fid["mae_top1_points"],
        "fit_s": round(time.perf_counter() - t0, 1),
        "weights_storage": "base64 of little-endian float32, with each array's shape",
        "rebuild_command": command,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if description:
        meta["description"] = description
    student.metadata_ = meta
    student.metric = metric or tinfo.get("metric") or student.metric
    # packed float32: what torch trained, at a quarter of the size of decimal lists (wide students)
    student.save(out, packed=True)
    return meta
