"""The ``nas`` command: a thin shell over the Python API, one module per subcommand.

Each module in ``COMMANDS`` has ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``. Bad input raises UserError: one line on stderr, exit 2; anything else is
one line and exit 1 (set NAS_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from search_spaces.errors import UserError

# Module names under nas.cli, in the order `nas --help` lists them.
COMMANDS = ["spaces", "devices", "convert", "export", "predict", "import_table", "fit_device", "search",
            "fit_predictor", "profile", "measure", "calibrate", "validate_latency", "sweep", "train"]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line (plus where to look) and exit 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def add_command(sub, name: str, help: str, example: str, func):
    """A subcommand parser whose --help ends with a usage example."""
    p = sub.add_parser(name, help=help, description=help, epilog=f"example:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nas", description="hwnas: hardware-aware neural architecture search.",
        epilog="example:\n  nas search --space ofa --target pixel --latency 80ms",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"nas.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"nas {args.command}"
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the CLI's last resort: one line, not a traceback
        if os.environ.get("NAS_DEBUG"):
            raise
        print(f"{prog}: internal error: {type(e).__name__}: {e} (NAS_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


def print_json(obj) -> None:
    from nas.io import to_json

    print(to_json(obj))
