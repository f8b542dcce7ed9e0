"""`nas fit-device`: a modelled device profile from published latencies (a phone we cannot touch)."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(
        sub, "fit-device",
        "Fit a per-operator latency model on published figures of a device and write its profile "
        "(marked modelled, citing its sources, with its fit error) pricing every space's blocks.",
        "nas fit-device --name pixel1 --alias pixel --whole pixel1_published_latency.csv "
        "--arch-configs arch_configs.json --blocks mobile_trim.yaml pixel1_runtime_model.json "
        "--out device_profiles/", run)
    p.add_argument("--name", required=True, help="device profile name (lower case)")
    p.add_argument("--alias", action="append", default=[], help="another name for the device (repeatable)")
    p.add_argument("--whole", metavar="CSV",
                   help="whole-network latencies: arch,device,runtime,precision,threads,batch,resolution,"
                        "latency_ms,top1,source")
    p.add_argument("--arch-configs", metavar="JSON", help="block lists of the --whole archs (arch_configs.json format)")
    p.add_argument("--blocks", nargs="*", default=[], metavar="FILE",
                   help="per-block tables: ProxylessNAS/Once-for-All YAML (KEY: {mean: ms}) or "
                        "Single-Path NAS per-layer runtime JSON")
    p.add_argument("--space", action="append", dest="spaces",
                   help="price only this space (repeatable; default: every space with blocks)")
    p.add_argument("--out", help="folder to write <name>.yaml into (default: $HWNAS_DEVICE_DIR or "
                                 "~/.hwnas/device_profiles)")
    p.add_argument("--no-eval", action="store_true", help="skip leave-one-family-out and held-out-table checks")
    p.add_argument("--json", action="store_true", help="machine-readable output (the evaluation report)")


def run(args) -> int:
    from latency_predictors.fit_device import write_device_profile
    from latency_predictors.registry import user_dir

    path, profile, report = write_device_profile(
        args.out if args.out else user_dir(), name=args.name, whole_csv=args.whole,
        arch_configs=args.arch_configs, block_files=args.blocks, aliases=args.alias,
        spaces=args.spaces, evaluate_fit=not args.no_eval)
    if args.json:
        print_json({"path": str(path), "device": profile.name, **report})
        return 0
    spaces = ", ".join(f"{s} ({len(t.entries)} blocks)" for s, t in profile.tables.items()) or "no space"
    print(f"wrote {path}: device {profile.name} (modelled), {spaces}")
    for name, r in report.get("fit", {}).items():
        print(f"  fit on {name}: MAPE {r['mape_pct']:.1f}% over {r['n']}")
    for fam, r in report.get("leave_one_family_out", {}).items():
        print(f"  family left out {fam}: MAPE {r['mape_pct']:.1f}% over {r['n']}")
    for t, r in report.get("table_held_out", {}).items():
        print(f"  table left out {t}: Spearman {r['spearman']:.3f} over {r['n']}")
    return 0
