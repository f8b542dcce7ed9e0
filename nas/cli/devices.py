"""`nas devices`: the device profiles (shipped and the user's) and what they cover."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(sub, "devices",
                    "List device profiles: names, aliases, spaces covered, source and validation error when known.",
                    "nas devices --json", run)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _space_text(name: str, info: dict) -> str:
    if "resolutions" in info:
        detail = f"{len(info['resolutions'])} resolutions"
    elif "layers" in info:
        detail = f"{info['layers']} layers"
    else:
        detail = f"{info['entries']} blocks"
    return f"{name} ({detail})"


def _validation_text(row: dict) -> str:
    parts = []
    for space, v in row["validation"].items():
        err = (f"MAPE {v['mape_pct']:.1f}%" if v.get("mape_pct") is not None
               else f"MAE {v['mae_ms']:.2f} ms" if v.get("mae_ms") is not None else "recorded")
        parts.append(f"{space}: {err} on {v['n_archs']} archs")
    fit = row.get("fit")
    if fit and fit.get("mape_pct") is not None:
        parts.append(f"fit ({fit['method']}): MAPE {fit['mape_pct']:.1f}% on {fit['n_points']} points")
    return "; ".join(parts) or "-"


def run(args) -> int:
    from nas.latency import describe_devices, device_dirs

    rows = describe_devices()
    dirs = device_dirs()
    if args.json:
        print_json({"devices": rows, "dirs": dirs})
        return 0
    if not rows:
        print("no device profiles yet; import one with `nas import-table` "
              f"(user profiles: {dirs['user']}, set HWNAS_DEVICE_DIR to change)")
        return 0
    for row in rows:
        if "broken" in row:
            print(f"{row['name']} - BROKEN, skipped ({row['origin']} profile {row['path']})")
            print(f"  {row['broken']}")
            continue
        aliases = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        what = f" - {row['device']}" if row["device"] else ""
        print(f"{row['name']}{aliases}{what}")
        spaces = ", ".join(_space_text(n, i) for n, i in row["spaces"].items()) or "-"
        print(f"  source: {row['source']} ({row['origin']})  spaces: {spaces}")
        print(f"  validation: {_validation_text(row)}")
    print(f"user profiles: {dirs['user']} (set HWNAS_DEVICE_DIR to change)")
    return 0
