"""Where benchmarks/ablation.py saves its paired report: a probe on other data or with another recipe must not
replace the main table's results file."""

from __future__ import annotations

import sys

from tests.benchmarks.scripthelpers import BENCHMARKS

sys.path.insert(0, str(BENCHMARKS))

from ablation import results_path  # noqa: E402


def test_other_data_and_recipes_get_results_files_of_their_own():
    main = results_path("synth_light", "finetune", None, "")
    assert main == BENCHMARKS / "results" / "ablation_synth_light_finetune.json"
    names = {results_path("synth_light", "finetune", groups, recipe).name
             for groups in (None, ["slow", "medium"], ["fast"]) for recipe in ("", "lr10")}
    assert names == {"ablation_synth_light_finetune.json", "ablation_synth_light_finetune_lr10.json",
                     "ablation_synth_light_finetune_slow-medium.json",
                     "ablation_synth_light_finetune_slow-medium_lr10.json",
                     "ablation_synth_light_finetune_fast.json", "ablation_synth_light_finetune_fast_lr10.json"}
