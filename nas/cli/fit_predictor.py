"""`nas fit-predictor`: train a `predictor:PATH` accuracy estimator on (arch, top-1) pairs."""

from __future__ import annotations

from . import add_command, non_negative_int, print_json


def register(sub):
    p = add_command(
        sub, "fit-predictor",
        "Train an accuracy predictor (MLP or gradient boosting) on measured (arch, top-1) pairs from a "
        "CSV (columns arch, top1|accuracy) or JSON list; reports held-out Spearman and saves a JSON model "
        "for --accuracy predictor:PATH.",
        "nas fit-predictor --space ofa --data measured.csv --out acc_model.json --kind mlp", run)
    p.add_argument("--space", required=True, help="the space the archs belong to (e.g. ofa)")
    p.add_argument("--data", required=True, help="CSV or JSON of (arch, top-1) pairs; top-1 as a fraction or a percent")
    p.add_argument("--out", required=True, help="where to write the model (JSON, written atomically)")
    p.add_argument("--kind", choices=["mlp", "gbr"], default="mlp", help="MLP (default) or gradient-boosted trees")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the split and the model (default 0)")
    p.add_argument("--test-frac", type=float, default=0.2, help="fraction held out for the reported metrics (default 0.2)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args) -> int:
    from nas.accuracy.learned import fit_predictor

    s = fit_predictor(args.space, args.data, args.out, kind=args.kind, seed=args.seed, test_frac=args.test_frac)
    if args.json:
        print_json(s)
        return 0
    unit = ("a percent (values above 1), divided by 100" if s["unit_detected"] == "percent"
            else "a fraction (all values within [0, 1])")
    print(f"read {s['n_pairs']} (arch, {s['column']}) pairs from {s['data']}; top-1 read as {unit}")
    print(f"trained {s['kind']} on {s['n_train']} pairs (space {s['space']}, seed {s['seed']}); "
          f"held out {s['n_heldout']}: Spearman {s['heldout_spearman']:.3f}, "
          f"MAE {s['heldout_mae_top1_points']:.2f} top-1 points")
    print(f"wrote {args.out} (use it with --accuracy predictor:{args.out})")
    return 0
