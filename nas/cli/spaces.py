"""`nas spaces`: every registered search space with its dims and size."""

from __future__ import annotations

from . import add_command, print_json


def register(sub):
    p = add_command(sub, "spaces", "List the registered search spaces, their dimensions and sizes.",
                    "nas spaces --json", run)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from nas.api import describe_spaces

    from nas.accuracy import default_summary

    rows = describe_spaces()
    for row in rows:  # what the default accuracy estimator of each space can and cannot rank
        row["accuracy_default"] = default_summary(row["name"])
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['description']})")
        print(f"  size: {row['size']:.3e} distinct networks"
              + (f" ({row['size_per_resolution']:.3e} per resolution)" if "size_per_resolution" in row else ""))
        for d in row["dims"]:
            print(f"  {d['names']:<16} {d['values']}")
        acc = row["accuracy_default"]
        print(f"  accuracy default: {acc['spec']}: {acc['source']}; it {acc['ranking']}")
    return 0
