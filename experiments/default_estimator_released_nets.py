"""How well each space's default accuracy estimator ranks released nets whose ImageNet top-1 is known.

* Once-for-All's specialised nets in ../shared/data/ofa/specialized (top-1 from the folder name),
  converted to archs with ``nas.convert``: the width-1.2 MobileNetV3 nets are archs of ``ofa``
  (default: the model distilled from Once-for-All's released predictor), the width-1.0 ones of
  ``ofa-w1.0`` (default: the ``published`` prior). Nets whose resolution lies outside the space's
  searched range are listed but not scored by a learned model (it has never seen that input).
  The ProxylessNAS-backbone nets convert to no registered space, so they appear only below.
* The rows of nas/accuracy/published_results.yaml, per family: the ``published`` prior's
  leave-one-out prediction (fitted on all other rows), since the prior is fitted on these rows.

For each group: n, Spearman and Kendall tau of the prediction vs the released top-1, and MAE.

    python experiments/default_estimator_released_nets.py            # ../shared/data or $HWNAS_SHARED_DATA
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NAME = re.compile(r"top1-(\d+(?:\.\d+)?)")


def shared_data() -> Path:
    return Path(os.environ.get("HWNAS_SHARED_DATA", REPO.parent / "shared" / "data"))


def stats(pred: np.ndarray, true: np.ndarray) -> dict:
    from scipy.stats import kendalltau, spearmanr

    return {"n": int(len(true)), "spearman": round(float(spearmanr(pred, true)[0]), 3),
            "kendall": round(float(kendalltau(pred, true)[0]), 3),
            "mae_points": round(float(np.mean(np.abs(100 * pred - true))), 2)}


def released_nets(data: Path) -> dict[str, list[tuple[str, dict, float]]]:
    from nas.api import convert
    from search_spaces.errors import UserError

    by_space: dict[str, list] = {}
    for d in sorted((data / "ofa" / "specialized").iterdir()):
        m = NAME.search(d.name)
        if not m:
            continue
        try:
            c = convert(d)
        except UserError:
            by_space.setdefault("(no registered space)", []).append((d.name, {}, float(m.group(1))))
            continue
        by_space.setdefault(c["space"], []).append((d.name, c["result"], float(m.group(1))))
    return by_space


def main() -> int:
    data = shared_data()
    if not (data / "ofa" / "specialized").is_dir():
        print(f"skipped: no Once-for-All specialised nets under {data} (set HWNAS_SHARED_DATA)")
        return 0
    from nas.accuracy import default_spec, get_estimator
    from nas.accuracy.published import leave_one_out
    from search_spaces import get_space

    print(f"{'group':<44}{'estimator':<12}{'n':>4}{'Spearman':>10}{'Kendall':>9}{'MAE pts':>9}")
    for space_name, nets in released_nets(data).items():
        if space_name == "(no registered space)":
            print(f"{'OFA ProxylessNAS-backbone nets':<44}{'-':<12}{len(nets):>4}   (convert to no registered space)")
            continue
        sp = get_space(space_name)
        X = sp.encode([a for _, a, _ in nets])
        true = np.array([t for _, _, t in nets])
        searched = set(sp.dims[-1].searched) if sp.dims[-1].name == "r" else None
        res = sp.resolution(X)
        inside = np.array([searched is None or int(r) in searched for r in res])
        spec = default_spec(sp)
        est = get_estimator("default", sp)
        pred = est.predict(X)
        label = f"OFA specialised nets, {space_name}"
        if spec != "published" and not inside.all():
            out = [n for (n, _, _), ok in zip(nets, inside) if not ok]
            print(f"  ({len(out)} outside the searched resolutions, not scored: {', '.join(out)})")
            print(f"{label:<44}{spec:<12}" + _fmt(stats(pred[inside], true[inside])))
        else:
            print(f"{label:<44}{spec:<12}" + _fmt(stats(pred, true)))
        if spec != "published":  # the size-only prior and the released predictor on the same nets
            prior = get_estimator("published", sp).predict(X)
            print(f"{'  same nets, all resolutions':<44}{'published':<12}" + _fmt(stats(prior, true)))
            teacher = data / "ofa" / "acc_predictor.pth"
            if space_name == "ofa" and teacher.is_file():
                t = get_estimator(f"ofa-predictor:{teacher}", sp).predict(X[inside])
                print(f"{'  same nets as the shipped model':<44}{'ofa-pred.':<12}" + _fmt(stats(t, true[inside])))
    loo = leave_one_out()
    fams = sorted({r["family"] for r in loo})
    for fam in fams + ["all"]:
        rows = [r for r in loo if fam == "all" or r["family"] == fam]
        if len(rows) < 3:
            continue
        s = stats(np.array([r["predicted"] for r in rows]) / 100, np.array([r["top1"] for r in rows]))
        print(f"{'published_results.yaml: ' + fam:<44}{'published*':<12}" + _fmt(s))
    print("* leave-one-out: each row predicted by the prior fitted on all other rows")
    return 0


def _fmt(s: dict) -> str:
    return f"{s['n']:>4}{s['spearman']:>10.3f}{s['kendall']:>9.3f}{s['mae_points']:>9.2f}"


if __name__ == "__main__":
    from nas.cli import run_tool

    raise SystemExit(run_tool(main, "default_estimator_released_nets"))
