"""Command-line options that several commands share: the inference settings of ``detect`` and ``eval``."""

from __future__ import annotations

import argparse
import dataclasses

from dsfnet.config import TEST_MEMORIES, TEST_SAMPLINGS, TestConfig, check_test

#: option -> ``TestConfig`` field it overrides
INFERENCE_OPTIONS = {"n": "num_frames", "sampling": "sampling", "memory": "memory", "stride": "stride", "mode": "mode",
                     "seed": "seed", "precision": "precision"}


def _integer_at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum`` (argparse names the option in its refusal, at parse time,
    before anything is written)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """``--n --sampling --memory --stride --mode --seed --precision``: each overrides ``test.*`` of the model's
    config."""
    parser.add_argument("--n", type=_integer_at_least(1), default=None,
                        help="frames per clip: test frame + n-1 support frames; None = the config's test.num_frames")
    parser.add_argument("--sampling", choices=TEST_SAMPLINGS, default=None,
                        help="support frames: shuffled global set (paper default), fixed stride around the test "
                             "frame, causal (past frames only, from a bounded memory: the only choice for live "
                             "streams) or shuffled_window (each frame with its n-1 neighbours in a shuffled order; "
                             "frame folders and datasets); None = the config's test.sampling")
    parser.add_argument("--memory", choices=TEST_MEMORIES, default=None,
                        help="causal support memory: recent (the n-1 latest frames) or spread (a uniform random "
                             "sample of the whole past, fixed size n-1, seeded by --seed); None = test.memory")
    parser.add_argument("--stride", type=_integer_at_least(1), default=None,
                        help="stride between support frames with --sampling stride; None = test.stride")
    parser.add_argument("--mode", choices=("cached", "exact"), default=None,
                        help="cached: support features computed once per video; exact: the full network on "
                             "every test frame's clip; None = test.mode")
    parser.add_argument("--seed", type=_integer_at_least(0), default=None, help="seed of the shuffled support order; None = test.seed")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                        help="bf16: run the model under bfloat16 autocast (fast on GPUs and on CPUs with AMX or "
                             "AVX512-BF16, slower on other CPUs); None = test.precision (fp32 by default)")


def inference_settings(args: argparse.Namespace, test: TestConfig) -> TestConfig:
    """``test`` with the options given on the command line, checked (a copy; ``test`` is unchanged)."""
    given = {field: getattr(args, option) for option, field in INFERENCE_OPTIONS.items()
             if getattr(args, option, None) is not None}
    return check_test(dataclasses.replace(test, **given))
