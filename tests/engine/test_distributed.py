"""Two-process DistributedDataParallel training with gloo on CPU; the process group's teardown."""

from __future__ import annotations

import socket

import torch
import torch.multiprocessing as mp

from dsfnet.engine.checkpoint import load_checkpoint

from enginehelpers import ddp_worker, process_group_worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_rank_gloo_run_keeps_identical_weights(tmp_path, tiny_config):
    config = tiny_config("model.variant=dsfnet", "model.num_classes=3", "train.iterations=3", "train.lr=0.02",
                         "train.accumulation_steps=2", "train.log_interval=1", "train.checkpoint_interval=2")
    results = tmp_path / "weights"
    results.mkdir()
    mp.spawn(ddp_worker, args=(2, _free_port(), config, str(tmp_path / "run"), str(results)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(results / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    torch.manual_seed(config.train.seed)
    from dsfnet.models.build import build_model
    initial = build_model(config.model).state_dict()
    changed = 0
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), name
        changed += not torch.equal(value, initial[name])
    assert changed > 0.5 * len(rank0)  # the run did train
    saved = load_checkpoint(tmp_path / "run" / "last.pth")
    assert saved["iteration"] == 3 and saved["world_size"] == 2 and len(saved["rng_all_ranks"]) == 2
    for name, value in rank0.items():
        assert torch.equal(saved["model"][name], value)
    assert (tmp_path / "run" / "final.pth").is_file()


def test_no_rank_leaves_the_process_group_while_another_still_works(tmp_path):
    mp.spawn(process_group_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)  # both exit 0
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["gathered"] == rank1["gathered"] == [0, 1]
    assert rank1["work_done"] < rank0["work_done"] - 1.0  # rank 1 had nothing more to do...
    assert rank1["left"] >= rank0["work_done"]            # ...and still waited for rank 0 before the teardown
