"""One GPU, one NCCL rank (``cuda`` tests): ``dsfnet train`` under torchrun with DDP, bf16 autocast and a resume,
then ``dsfnet eval`` of its checkpoint in bf16 through the sharded evaluation's collective calls."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsfnet.engine.checkpoint import load_checkpoint

from test_train_command import synth_root  # noqa: F401 (a fixture: a small synthetic dataset)

pytestmark = pytest.mark.cuda

REPO = Path(__file__).resolve().parents[2]
LAUNCH = Path(__file__).with_name("grouped_launch.py")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(*argv: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "1",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(LAUNCH), *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": os.pathsep.join(filter(None, (
        str(REPO), os.environ.get("PYTHONPATH"))))}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_one_rank_nccl_training_learns_and_resumes(tmp_path, synth_root, gpu):
    run = tmp_path / "run"
    options = ["--opts", f"data.root={synth_root}", "model.variant=dsfnet", "train.iterations=20", "train.amp=true",
               "train.lr=0.02", "train.clip_grad_norm=10", "train.log_interval=5", "train.checkpoint_interval=10"]
    common = ["train", str(REPO / "configs" / "tiny.yaml"), "--out", str(run), "--device", gpu.type,
              "--no-progress"]
    first = _torchrun(*common, "--stop-after", "10", *options)
    assert first.returncode == 0, first.stderr[-3000:]
    assert load_checkpoint(run / "last.pth")["iteration"] == 10 and not (run / "final.pth").exists()
    second = _torchrun(*common, "--resume", *options)
    assert second.returncode == 0, second.stderr[-3000:]
    saved = load_checkpoint(run / "last.pth")
    assert saved["iteration"] == 20 and (run / "final.pth").is_file()
    assert saved["world_size"] == 1 and len(saved["rng_all_ranks"]) == 1  # gathered: the process group was used
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [record for record in records if "train" in record]
    assert [record["iteration"] for record in steps] == [5, 10, 15, 20]
    losses = [record["train"]["loss"] for record in steps]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses
    assert all(("max_memory_mb" in record["train"]) == (gpu.type == "cuda") for record in steps)
    evaluated = _torchrun("eval", str(REPO / "configs" / "tiny.yaml"), "--weights", str(run / "final.pth"), "--data",
                          str(synth_root), "--out", str(tmp_path / "eval"), "--device", gpu.type, "--precision",
                          "bf16")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["precision"] == "bf16" and report["num_frames"] == 8 and 0.0 <= report["map"] <= 1.0
