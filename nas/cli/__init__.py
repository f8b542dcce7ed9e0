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
            "fit_predictor", "profile", "measure", "calibrate", "validate_latency", "sweep", "train",
            "eval_subnets", "finetune", "import_weights"]


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad usage as one line (plus where to look) and exit 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def add_command(sub, name: str, help: str, example: str, func):
    """A subcommand parser whose --help ends with a usage example.

    argparse %-formats the one-line help of each command (for ``nas --help``), so a literal ``%``
    in the summary is escaped here; descriptions and epilogs are printed as written.
    """
    p = sub.add_parser(name, help=help.replace("%", "%%"), description=help, epilog=f"example:\n  {example}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def non_negative_int(text: str) -> int:
    """argparse type for seeds and counts that may be zero: a usage error names what is accepted."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwnas")
    except PackageNotFoundError:  # running from a source tree that was never installed
        from nas import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nas", description="hwnas: hardware-aware neural architecture search.",
        epilog="example:\n  nas search --space ofa --target pixel --latency 80ms",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hwnas {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"nas.cli.{name}").register(sub)
    parser.commands = dict(sub.choices)  # name -> its parser, for tools and tests that walk them
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"nas {args.command}"
    import warnings

    # a warning is one line naming the command, not Python's "file:line: Category" plus source line
    # (showwarning, not formatwarning: a caller that records warnings, such as pytest, would swallow them).
    # Warnings are held until the command ends: a command that fails prints its one error line only.
    saved = warnings.showwarning
    held: list[str] = []
    warnings.showwarning = lambda message, category, *a, **k: held.append(
        f"{prog}: warning: {_one_line(str(message))}\n")
    # ONNX Runtime's telemetry is off unless the user opts in; it must be set before onnxruntime is
    # imported (see latency_predictors/ort_telemetry.py), and Ray workers inherit it.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        code = int(args.func(args) or 0)
        sys.stderr.write("".join(dict.fromkeys(held)))
        return code
    except UserError as e:
        print(f"{prog}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - the CLI's last resort: one line, not a traceback
        if os.environ.get("NAS_DEBUG"):
            raise
        if isinstance(e, OSError) and e.filename:
            # A path the user named cannot be read or written (read-only filesystem, a file where
            # a folder should be, permissions, a full disk): their environment, not our bug.
            print(f"{prog}: error: cannot use {str(e.filename)!r}: {e.strerror or type(e).__name__}",
                  file=sys.stderr)
            return 2
        print(f"{prog}: internal error: {type(e).__name__}: {_one_line(str(e))} (NAS_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = saved


def run_tool(main, prog: str) -> int:
    """Run a script's ``main()`` (the benches and experiments): a UserError, such as a budget no arch
    can meet, is one line on stderr and exit status 2, as in the ``nas`` commands, not a traceback."""
    try:
        code = main()
    except UserError as e:
        print(f"{prog}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    # some scripts' main returns its exit status, others their result (a dict): only an int is a status
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _one_line(msg: str) -> str:
    """An error message as one line: messages quoting a file's content may hold newlines."""
    return " | ".join(part.strip() for part in msg.strip().splitlines() if part.strip())


def print_json(obj) -> None:
    from nas.io import to_json

    print(to_json(obj))
