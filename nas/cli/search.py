"""`nas search`: the most accurate arch that meets a latency budget on one or more devices."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from nas.search_config import DEFAULT_BUDGET, EXPENSIVE_BUDGET

from . import add_command, non_negative_int, print_json
from ._timing_args import add_recalibrate_arg


# Flags that define a search: a resumed run takes them from its run folder (config.json), so
# giving one with --resume is refused instead of silently ignored. The rest (output and
# reporting) apply to the resumed run as given.
RUN_DEFINING = ["space", "target", "latency", "latency_margin", "reward", "w", "strategy", "param", "accuracy",
                "budget", "seed", "top_k", "out"]


def _strategies() -> str:
    from nas.strategies import list_strategies

    return ", ".join(list_strategies())


def accuracy_spec(accuracy: str | None, data: str | None, verify_accuracy: str | None = None) -> str | None:
    """The estimator spec with --data folded in (so config.json, and hence --resume, keeps it)."""
    from search_spaces.errors import UserError

    if data is None:
        return accuracy
    if not (accuracy or "").startswith("supernet:"):
        if (verify_accuracy or "").startswith("supernet:"):
            return accuracy  # --data is the verifying supernet's (verify_spec)
        raise UserError("--data is for --accuracy supernet:CKPT or --verify-accuracy supernet:CKPT (measured "
                        "accuracy); other estimators take no data")
    return f"{accuracy},data={data}"


def verify_spec(verify_accuracy: str | None, data: str | None) -> str | None:
    """--verify-accuracy with --data folded in when it is a supernet without data of its own."""
    if verify_accuracy is None or data is None or not verify_accuracy.startswith("supernet:") \
            or ",data=" in verify_accuracy:
        return verify_accuracy
    return f"{verify_accuracy},data={data}"


def register(sub):
    p = add_command(
        sub, "search",
        "Search a space for the most accurate network that meets a latency budget on a device "
        "(repeat --target/--latency for several devices).",
        "nas search --space ofa --target pixel --latency 80ms\n"
        "  nas search --space ofa --target pixel --latency 80ms --target x86 --latency 20ms --budget 50000\n"
        "  nas search --space-module experiments/custom_space.py:TinyChain --target pixel --latency 20ms\n"
        "  nas search --space ofa --target pixel --latency 80ms --out runs/pixel80\n"
        "  nas search --resume runs/pixel80      (after a kill: continues to the uninterrupted result)\n"
        "  nas search --space ofa-small --accuracy supernet:runs/ps --data digits --target x86 --latency 2ms\n"
        "  nas search --space ofa-small --accuracy predictor:acc.json --verify-accuracy supernet:runs/ps --data digits "
        "--top-k 20 --target x86 --latency 0.2ms", run)
    p.add_argument("--space", help="search space (see nas spaces; default ofa)")
    p.add_argument("--space-module", metavar="PATH.py:CLASS",
                   help="search a space declared in a Python file instead, e.g. experiments/custom_space.py:TinyChain")
    p.add_argument("--target", action="append", help="device name or alias (see nas devices); default pixel")
    p.add_argument("--latency", action="append", help="latency budget per target: 80ms, '80 ms', 0.08s or 80")
    p.add_argument("--latency-margin", type=float,
                   help="fraction of each budget kept free, e.g. 0.05 for a modelled profile (default 0)")
    p.add_argument("--reward", help="hard (default), mnas (soft ACC*(LAT/T)^w) or mnas-hard")
    p.add_argument("--w", type=float, help="exponent of the soft mnas reward (default -0.07)")
    p.add_argument("--strategy", default=None,
                   help=f"search strategy: {_strategies()} (default: evolution, or predictor-evolution when the "
                        "estimator declares a cost per arch (cost_s); see docs/search.md)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy parameter, e.g. population=100, parent_ratio=0.25, mutate_prob=0.1")
    p.add_argument("--accuracy",
                   help="default (the model shipped for the space: for ofa, distilled from Once-for-All's "
                        "released predictor; else the published prior), published, ofa (Once-for-All's "
                        "released predictor, fetched once), ofa-predictor:PATH, predictor:PATH or supernet:CKPT (top-1 measured "
                        "with a trained supernet on --data)")
    p.add_argument("--data", help="with --accuracy supernet:CKPT: digits, a .npz or DIR/CLASS/images "
                                  "(default: the data the supernet was trained on)")
    p.add_argument("--budget", type=int, default=None,
                   help=f"accuracy evaluations to spend (default {DEFAULT_BUDGET}; {EXPENSIVE_BUDGET} for supernet:CKPT)")
    p.add_argument("--seed", type=non_negative_int,
                   help="random seed; the same seed and settings give the same result (default 0)")
    p.add_argument("--top-k", type=int, help="how many of the best archs to report (default 5)")
    p.add_argument("--out", help="run folder, new or empty (default runs/search-SPACE-TARGET-LATENCY-seedN-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a killed search from its run folder; its settings come from there, so "
                        "give none of --space, --target, --latency, --budget, --seed, ... (a user space "
                        "file must be named again with --space-module, as it runs code)")
    p.add_argument("--export", choices=["onnx", "pt"], help="also export the best arch into the run folder "
                   "(a training strategy: the found net with the weights it inherited)")
    p.add_argument("--verify", action="store_true",
                   help="measure the top-k whole on this host (targets profiled here) and re-rank by it")
    p.add_argument("--verify-accuracy", metavar="SPEC",
                   help="after the search, measure its top-k (--top-k) with this estimator, e.g. supernet:CKPT "
                        "(with --data), and re-rank them by the measurement: search on a predictor:PATH, keep "
                        "its best measured pick (docs/accuracy.md)")
    add_recalibrate_arg(p)
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="print result.json instead of the table")
    p.add_argument("--verbose", action="store_true", help="print each target's full latency provenance")
    p.set_defaults(_parser_defaults={d: p.get_default(d) for d in RUN_DEFINING})


def _params(pairs: list[str]) -> dict:
    from search_spaces.errors import UserError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param {pair!r}: expected KEY=VALUE, e.g. population=100")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def search_config(args):
    """The SearchConfig of a new ``nas search`` (the API's and a sweep trial's for the same request)."""
    from nas.search_config import SearchConfig
    from search_spaces.errors import UserError

    if not args.latency:
        raise UserError("--latency is required, e.g. --latency 80ms (one per --target)")
    return SearchConfig.of(space=args.space, space_module=args.space_module, target=args.target,
                           latency_ms=args.latency, latency_margin=args.latency_margin, reward=args.reward,
                           w=args.w, strategy=args.strategy, strategy_params=_params(args.param),
                           accuracy=accuracy_spec(args.accuracy, args.data, getattr(args, "verify_accuracy", None)),
                           budget=args.budget, seed=args.seed,
                           top_k=args.top_k)


def run(args) -> int:
    from nas.search import resume, search
    from nas.search_config import SearchConfig
    from search_spaces.errors import UserError

    if args.space_module and args.space is not None:
        raise UserError("give either --space NAME or --space-module PATH.py:CLASS, not both")
    run_args = dict(progress=not args.quiet and not args.json, plot=not args.no_plot, verify=args.verify,
                    recalibrate=args.recalibrate, verify_accuracy=verify_spec(args.verify_accuracy, args.data))
    if args.resume:
        run_dir = Path(args.resume)
        given = [d for d, default in args._parser_defaults.items() if getattr(args, d) != default]
        if given:
            flags = ", ".join("--" + d.replace("_", "-") for d in given)
            raise UserError(f"--resume RUN_DIR takes the search settings from {str(run_dir / 'config.json')!r}; "
                            f"drop {flags} (start a new search with another --out to change them)")
        result = resume(run_dir, space_module=args.space_module, **run_args)
        config = SearchConfig.read(run_dir)
    else:
        config = search_config(args)
        space = config.load_space()  # a --space-module file is checked here, before any folder is made
        targets = [t for t, _ in config.targets]
        run_dir = Path(args.out or (Path("runs") / f"search-{space.name}-{'-'.join(targets)}-"
                                    f"{'-'.join(b.replace(' ', '') for b in args.latency)}-seed{config.seed}-"
                                    f"{datetime.now().strftime('%Y%m%d-%H%M%S')}"))
        result = search(config, out=run_dir, **run_args)
    exported = None
    if args.export and result.best is not None and result.training is not None:
        from nas.gradient.found import export_found  # the found net with the weights it inherited

        exported = export_found(run_dir / "found_net.pt", run_dir / f"best.{args.export}")["path"]
    elif args.export and result.best is not None:
        from nas.export import export

        exported = export(config.load_space(), result.best.arch, run_dir / f"best.{args.export}")["path"]
    if args.json:
        print_json(result.model_dump())
        return 0
    print(format_result(result, run_dir, exported, verbose=args.verbose))
    return 0


def short_source(source: str, width: int = 48) -> str:
    """A latency source's label (kind and model/table name); the full provenance is in result.json."""
    label = ": ".join(source.split(": ", 2)[:2])
    return label if len(label) <= width else label[: width - 3] + "..."


def format_result(result, run_dir: Path, exported: str | None = None, verbose: bool = False) -> str:
    """The human-readable summary: best arch, top-k table, sources and expected errors."""
    from nas.io import to_json

    devs = [t.device for t in result.targets]
    soft = result.reward == "mnas"  # MnasNet's soft reward: the budget is a target, not a limit
    lines = [f"space {result.space} | strategy {result.strategy} | {result.n_evaluated} archs evaluated "
             f"in {result.wall_time_s:.1f} s | seed {result.seed}"]
    for t in result.targets:
        err = ""
        if t.expected_error:
            e = t.expected_error
            mape = e.get("mape_pct")
            if mape is not None:
                err = f"; expected error MAPE {mape:.1f}%"
        margin = f" (limit {t.limit_ms:g} ms with margin {t.margin:g})" if t.margin else ""
        goal = (f"soft target T = {t.budget_ms:g} ms (reward top-1 x (latency/T)^{result.w:g})"
                if soft else f"<= {t.budget_ms:g} ms{margin}")
        shown = t.host and (t.host.get("status") != "same-host" or t.host.get("measured_here"))
        where = f"; {t.host['label']}" if shown else ""
        lines.append(f"target {t.device}: {goal} [{short_source(t.latency_source)}{err}{where}]")
        if verbose:
            lines.append(f"  latency source: {t.latency_source}")
        if t.pricing:  # whole-cell pricing: how much of the search the fallback priced, what measuring cost
            pr = t.pricing
            ranks = pr.get("top_k_priced_additive")
            lines.append(f"  priced {pr['archs_priced']} archs, {pr['archs_priced_additive']} of them by the additive "
                         f"per-op fallback; {pr['units_measured']} units measured on demand in {pr['measuring_s']:.0f} s"
                         + (f"; top-k ranks priced additively: {ranks}" if ranks else ""))
    metric = result.accuracy.get("metric")
    lines.append(f"accuracy: {result.accuracy.get('name')} [{result.accuracy.get('source')}]"
                 + (f"; predicts {metric}" if metric else ""))
    if result.best is None:
        lines.append("no architecture met the constraints")
        return "\n".join(lines)
    measured = list(result.verified_devices)
    score_head = f"  {'reward':>7}" if result.reward != "hard" else ""
    checked = result.verified_accuracy is not None  # --verify-accuracy: each arch's measured top-1 beside
    head = f"{'rank':>4}{score_head}  {'top-1 %':>7}  " + (f"{'measured %':>10}  " if checked else "") + \
        "  ".join(f"{d + ' ms':>12}" for d in devs) + \
        "".join(f"  {d + ' measured':>16}" for d in measured) + f"  {'MACs M':>8}  {'params M':>8}"
    lines += ["", head]
    for i, s in enumerate(result.top_k, 1):
        score = f"  {s.score:>7.4f}" if result.reward != "hard" else ""
        got = f"{100 * s.measured_top1:>10.2f}  " if checked and s.measured_top1 is not None else \
            (f"{'-':>10}  " if checked else "")
        lines.append(f"{i:>4}{score}  {100 * s.top1:>7.2f}  {got}" + "  ".join(f"{s.latency_ms[d]:>12.2f}" for d in devs)
                     + "".join(f"  {s.measured_latency_ms[d]:>16.2f}" for d in measured)
                     + f"  {_millions(s.macs, 8, 1)}  {_millions(s.params, 8, 2)}")
    lines += ["", "best arch:", to_json(result.best.arch)]
    for n in result.notes:
        lines.append(f"note: {n}")
    lines.append(f"results: {run_dir / 'result.json'}" + (
        f", plot: {run_dir / 'search.png'}" if (run_dir / "search.png").exists() else "")
        + (f", model: {exported}" if exported else ""))
    return "\n".join(lines)


def _millions(x: float | None, width: int, digits: int) -> str:
    """x / 1e6 for the table; '-' when the space cannot count it (macs/params null)."""
    return f"{'-':>{width}}" if x is None else f"{x / 1e6:>{width}.{digits}f}"
