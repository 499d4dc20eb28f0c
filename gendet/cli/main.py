"""`gendet` command line: one module per subcommand, each with add_parser() and run()."""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys

from gendet.extras import missing_extra_message
from gendet.version import VERSION

# subcommand -> module under gendet.cli. Later capabilities (bench, detect,
# generate, explain, serve) add one line here and one module.
COMMANDS: dict[str, str] = {
    "models": "gendet.cli.models_cmd",
    "train": "gendet.cli.train_cmd",
    "eval": "gendet.cli.eval_cmd",
    "report": "gendet.cli.report_cmd",
    "import-weights": "gendet.cli.import_weights_cmd",
    "bench": "gendet.cli.bench_cmd",
    "detect": "gendet.cli.detect_cmd",
    "generators": "gendet.cli.generators_cmd",
    "generate": "gendet.cli.generate_cmd",
    "explain": "gendet.cli.explain_cmd",
    "provenance": "gendet.cli.provenance_cmd",
    "export": "gendet.cli.export_cmd",
    "serve": "gendet.cli.serve_cmd",
    "data": "gendet.cli.data_cmd",
}


class UsageError(Exception):
    """Bad arguments discovered after parsing; exits with code 2 like argparse."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gendet",
        description="Detect generated images and benchmark detectors. Labels: 1 = generated, 0 = real.",
    )
    parser.add_argument("--version", action="version", version=f"gendet {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = module.add_parser(sub, name)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args._argv = argv  # so every command records the exact line that produced its numbers
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UsageError as e:
        print(f"gendet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # an optional extra that is not installed: one line naming it, not a traceback
        hint = missing_extra_message(e)
        if hint is None:
            raise
        print(f"gendet {args.command}: error: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def command_line(args: argparse.Namespace) -> str:
    """The exact `gendet ...` command line being run (recorded next to every number)."""
    return "gendet " + shlex.join(getattr(args, "_argv", []))


if __name__ == "__main__":
    sys.exit(main())
