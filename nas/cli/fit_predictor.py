"""`nas fit-predictor`: train a `predictor:PATH` accuracy estimator on (arch, top-1) pairs, or distil one."""

from __future__ import annotations

from . import add_command, non_negative_int, print_json


def register(sub):
    p = add_command(
        sub, "fit-predictor",
        "Train an accuracy predictor (MLP or gradient boosting) on measured (arch, top-1) pairs from a "
        "CSV (columns arch, top1|accuracy) or JSON list; or, with --teacher, distil another estimator "
        "into hwnas's MLP on archs sampled here. Reports held-out fidelity and saves a JSON model "
        "for --accuracy predictor:PATH.",
        "nas fit-predictor --space ofa --data measured.csv --out acc_model.json --kind mlp\n"
        "  nas fit-predictor --space ofa --teacher ofa-predictor:acc_predictor.pth --samples 150000 "
        "--heldout-band pixel:40ms --heldout-band pixel:80ms --out ofa_distilled.json", run)
    p.add_argument("--space", required=True, help="the space the archs belong to (e.g. ofa)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="CSV or JSON of (arch, top-1) pairs; top-1 as a fraction or a percent")
    src.add_argument("--teacher", metavar="SPEC",
                     help="distil this estimator (e.g. ofa-predictor:PATH or ofa) on archs sampled here")
    p.add_argument("--out", required=True, help="where to write the model (JSON, written atomically)")
    p.add_argument("--kind", choices=["mlp", "gbr"], default="mlp", help="MLP (default) or gradient-boosted trees")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the split (or the sampling) and the model (default 0)")
    p.add_argument("--test-frac", type=float, default=0.2, help="fraction held out for the reported metrics (default 0.2)")
    p.add_argument("--metric", help="what the accuracy is, e.g. 'ImageNet top-1' or 'CIFAR-10 val accuracy' "
                                    "(results repeat it; default: the teacher's, or 'top-1 as in the data')")
    d = p.add_argument_group("distillation (--teacher)")
    d.add_argument("--samples", type=int, default=150_000, help="archs labelled by the teacher (default 150000)")
    d.add_argument("--heldout", type=int, default=10_000, help="held-out archs for the fidelity (default 10000)")
    d.add_argument("--hidden", default="256,256", help="hidden layer widths (default 256,256)")
    d.add_argument("--epochs", type=int, default=25, help="training epochs (default 25)")
    d.add_argument("--refine", type=int, default=1,
                   help="refinement rounds: add the archs the student's own searches visit, labelled by the "
                        "teacher, and train on (default 1)")
    d.add_argument("--members", type=int, default=1, metavar="K",
                   help="fit K MLPs from different seeds on the same archs and save their mean (default 1)")
    d.add_argument("--trajectory-budgets", type=int, default=None, metavar="N",
                   help="budgets per cost model at which the teacher (and refinement) searches run, log-evenly "
                        "spaced over its whole cost range (default 9)")
    d.add_argument("--trajectory-evals", type=int, default=None, metavar="N",
                   help="evaluations per teacher search trajectory (default: nas search's default budget, "
                        "so they get as far as a user's search); refinement searches use at most 5000")
    d.add_argument("--heldout-band", action="append", default=[], metavar="DEVICE:BUDGET",
                   help="also report Spearman among held-out archs within 5%% of BUDGET on DEVICE "
                        "(repeatable), e.g. pixel:40ms")
    d.add_argument("--description", help="what the model is, shown as its source in results")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _hidden(text: str) -> list[int]:
    from search_spaces.errors import UserError

    try:
        widths = [int(h) for h in text.split(",") if h.strip()]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise UserError(f"--hidden {text!r}: expected comma-separated positive widths, e.g. 256,256")
    return widths


def run(args) -> int:
    if args.teacher:
        return _distil(args)
    from nas.accuracy.learned import fit_predictor

    s = fit_predictor(args.space, args.data, args.out, kind=args.kind, seed=args.seed, test_frac=args.test_frac,
                      metric=args.metric)
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


def _distil(args) -> int:
    import shlex

    from nas.accuracy.distill import distill
    from search_spaces.errors import UserError

    if args.kind != "mlp":
        raise UserError("--teacher distils into an MLP; drop --kind gbr")
    # The rebuild command, spelled out from the parsed options (every one that shapes the model).
    argv = ["nas", "fit-predictor", "--space", args.space, "--teacher", args.teacher, "--samples", args.samples,
            "--heldout", args.heldout, "--hidden", args.hidden, "--epochs", args.epochs, "--refine", args.refine, "--seed", args.seed]
    argv += ["--members", args.members] if args.members != 1 else []
    argv += ["--trajectory-evals", args.trajectory_evals] if args.trajectory_evals is not None else []
    argv += ["--trajectory-budgets", args.trajectory_budgets] if args.trajectory_budgets is not None else []
    argv += [x for b in args.heldout_band for x in ("--heldout-band", b)]
    argv += [x for opt, v in (("--description", args.description), ("--metric", args.metric)) if v
             for x in (opt, v)]
    command = " ".join(shlex.quote(str(a)) for a in argv + ["--out", args.out])
    m = distill(args.space, args.teacher, args.out, n_samples=args.samples, n_heldout=args.heldout,
                hidden=_hidden(args.hidden), epochs=args.epochs, seed=args.seed, refine=args.refine, bands=args.heldout_band,
                trajectory_evals=args.trajectory_evals, members=args.members,
                **({} if args.trajectory_budgets is None else {"trajectory_budgets_n": args.trajectory_budgets}),
                description=args.description, metric=args.metric, command=command)
    if args.json:
        print_json(m)
        return 0
    h = m["heldout"]
    what = f"the mean of {m['members']} MLPs {m['hidden']}" if m["members"] > 1 else f"an MLP {m['hidden']}"
    print(f"distilled {m['teacher']} into {what} on {m['n_train']} archs {m['sampling']} "
          f"in {m['fit_s']:.0f} s")
    print(f"held out {h['n_archs']} archs: Spearman {h['spearman']:.4f}, MAE {h['mae_top1_points']:.3f} top-1 points "
          f"(max {h['max_abs_err_top1_points']:.2f})")
    for b in h["bands"]:
        print(f"  within 5% of {b['budget_ms']:g} ms on {b['device']}: {b['n_archs']} archs, Spearman {b['spearman']:.4f}")
    print(f"wrote {args.out} (use it with --accuracy predictor:{args.out})")
    return 0
