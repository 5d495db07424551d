"""The ``dsfnet`` command line: one sub-command per job, each in ``dsfnet/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from typing import Optional

from dsfnet import __version__
from dsfnet.engine.signals import Terminated, TrainingStopped
from dsfnet.errors import DsfnetError
from dsfnet.io_errors import as_write_error, is_write_failure

# sub-command -> module exposing HELP, add_arguments(parser) and run(args) -> int
COMMANDS = ("demo", "synth", "convert", "train", "eval", "detect")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show an option's default unless it is empty or the help text already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in text:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsfnet",
        description="DSFNet video object detection (ACM MM 2020): train, evaluate and run the Dual Semantic "
        "Fusion Network. Run 'dsfnet COMMAND --help' for the options of a command.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log debug messages, and print the traceback of every error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"dsfnet.commands.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP,
                                  formatter_class=_HelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    """Run one sub-command; returns the exit status.

    The error boundary: a :class:`dsfnet.errors.DsfnetError` (bad input, config, option, missing or existing
    path, failed write, stalled stream), any other ``OSError`` (a path the user named), Ctrl-C and SIGTERM end
    with one line and exit 2 (130 for Ctrl-C, 143 for SIGTERM); any other exception is a bug: its traceback, a
    line asking to report it, and exit 1. ``-v`` prints the traceback in every case.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    prefix = f"dsfnet {args.command}"
    try:
        return args.run(args)
    except (TrainingStopped, Terminated) as stop:  # SIGTERM (train: last.pth written, "continue with --resume")
        print(f"{prefix}: {stop}", file=sys.stderr)
        return stop.exit_code
    except (DsfnetError, OSError) as error:
        _traceback_if(args.verbose)
        # a read-only folder, a full disk: "cannot write PATH: read-only file system"
        message = as_write_error(error) if is_write_failure(error) else error
        print(f"{prefix}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _traceback_if(args.verbose)
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug: the traceback is what a report needs
        traceback.print_exc()
        print(f"{prefix}: internal error (a bug in dsfnet {__version__}, not in your input): please report it with "
              "the traceback above and the command line", file=sys.stderr)
        return 1


def _traceback_if(verbose: bool) -> None:
    if verbose:
        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
