"""The ``dsfnet`` command line: one sub-command per job, each in ``dsfnet/commands/<name>.py``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional

from dsfnet.engine.signals import TrainingStopped
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
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"dsfnet.commands.{name}")
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP,
                                  formatter_class=_HelpFormatter)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return args.run(args)
    except TrainingStopped as stop:  # SIGTERM: last.pth written, "continue with --resume"
        print(f"dsfnet {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as error:
        # user-facing errors are one line; a bug elsewhere still shows its traceback
        print(f"dsfnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only folder, a full disk: "cannot write PATH: read-only file system"
        if not is_write_failure(error):
            raise
        print(f"dsfnet {args.command}: error: {as_write_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dsfnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
