"""``benchmarks/gpu_check.sh`` and ``benchmarks/gpu_env.py`` without a GPU: what is carried, the dry run's copy
of the GPU environment, and the script's refusals (the dry run itself takes minutes: docs/GPU_CHECK.md)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_env  # noqa: E402
import train_check  # noqa: E402


def test_the_carried_wheels_are_what_the_gpu_image_lacks():
    carried = {entry.split("==")[0] for entry in gpu_env.carried()}
    assert {"av", "pycocotools"} <= carried  # the CLI imports pycocotools; the tests read videos with PyAV
    assert not carried & gpu_env.GPU_IMAGE and all("==" in entry for entry in gpu_env.carried())
    # what the project's dependencies need in turn travels too (hypothesis needs sortedcontainers), but not what
    # the GPU image's own packages need (torch brings filelock and typing-extensions)
    assert "sortedcontainers" in carried and not {"filelock", "typing-extensions"} & carried


def test_the_dry_run_environment_hides_what_was_not_carried(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(tmp_path / "venv")],
                   check=True)
    python = tmp_path / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    gpu_env.hide(site)
    probe = "import yaml, tqdm\ntry:\n    import pycocotools\nexcept ModuleNotFoundError as error:\n    print(error)"
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True).stdout
    assert "'pycocotools' (not carried to the GPU machine: no wheel)" in out  # here, but not in the environment
    assert str(site) != sysconfig.get_paths()["purelib"]


def test_the_training_verdict_needs_finite_falling_losses():
    assert train_check.verdict([3.0, 2.5, 2.0, 1.0, 0.5])["falling"]
    assert not train_check.verdict([1.0, 2.0, 1.5, 2.0, 3.0])["falling"]
    nan = train_check.verdict([3.0, 2.0, float("nan"), 1.0, 0.5])
    assert not nan["finite"] and not nan["falling"]


@pytest.mark.parametrize("argv, message", [([], "usage"), (["--frobnicate", "out"], "unknown option"),
                                          (["--wheels", "no_such_folder", "out"], "no wheels in no_such_folder")])
def test_bad_arguments_stop_the_script_before_anything_runs(tmp_path, argv, message):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), *argv], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr and not (tmp_path / "out").exists()
