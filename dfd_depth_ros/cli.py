"""`dfd-depth`: the command-line entry point for pip users.

Each subcommand lives in ``dfd_depth_ros/commands/<name>.py`` and exposes
``register(subparsers)`` (adds its parser and sets ``func``). Heavy imports happen inside
the command so that ``dfd-depth --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Subcommand modules, in the order `--help` lists them.
COMMANDS = ["demo", "run", "bench", "eval_bag", "play", "make_bag", "preview", "soak"]


class CommandError(Exception):
    """A user-facing error: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dfd-depth",
        description="Metric depth from defocus: synthetic data, bags, models and the ROS 2 node graph.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"dfd_depth_ros.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"dfd-depth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
