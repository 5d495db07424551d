"""A tiny in-memory clip dataset for the engine tests (no files, no dsfnet.data), and a DDP worker."""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

COLOURS = {1: (0.9, 0.2, 0.1), 2: (0.1, 0.8, 0.2), 3: (0.2, 0.3, 0.95)}


class FakeClips(Dataset):
    """``length`` clips of 3 frames ``[3, 3, 128, 160]``: one coloured box (class = colour) moving on noise.

    Item ``i`` depends on ``(i, epoch)`` only, so the data order is the sampler's business.
    """

    def __init__(self, length: int = 8, frames: int = 3, height: int = 128, width: int = 160):
        self.length, self.frames, self.height, self.width = length, frames, height, width
        self.epoch = 0
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(1000 * self.epoch + index)
        clip = torch.rand(self.frames, 3, self.height, self.width, generator=generator) * 0.3
        label = index % 3 + 1
        size = int(torch.randint(32, 64, (2,), generator=generator)[0])
        x0 = int(torch.randint(0, self.width - size - 10, (1,), generator=generator))
        y0 = int(torch.randint(0, self.height - size - 10, (1,), generator=generator))
        for frame in range(self.frames):
            x, y = x0 + 2 * frame, y0 + frame
            clip[frame, :, y : y + size, x : x + size] = torch.tensor(COLOURS[label]).view(3, 1, 1)
        target = {"boxes": torch.tensor([[x0, y0, x0 + size - 1, y0 + size - 1]], dtype=torch.float32),
                  "labels": torch.tensor([label])}
        return {"clip": clip, "target": target, "meta": {"index": index}}


def collate(batch: list[dict]) -> dict:
    return {"clips": [item["clip"] for item in batch], "targets": [item["target"] for item in batch],
            "metas": [item["meta"] for item in batch]}


def ddp_worker(rank: int, world_size: int, port: int, config, out_dir: str, result_dir: str) -> None:
    """One rank of a gloo DDP run: train, then save this rank's weights for the test to compare."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from dsfnet.engine.trainer import train

    result = train(config, out_dir, device="cpu", dataset=FakeClips(8), collate_fn=collate, progress=False)
    torch.save({k: v.clone() for k, v in result.model.state_dict().items()}, os.path.join(result_dir, f"rank{rank}.pt"))


def process_group_worker(rank: int, world_size: int, port: int, result_dir: str) -> None:
    """One rank inside ``process_group``: gather, then rank 0 goes on working for a while (writing a report,
    say) while rank 1 leaves the block at once; each rank saves when its work ended and when it left."""
    import time

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    from dsfnet.engine.distributed import all_gather_object, process_group

    with process_group("cpu") as context:
        gathered = all_gather_object(rank, context)
        if rank == 0:
            time.sleep(1.5)
        work_done = time.time()
    torch.save({"gathered": gathered, "work_done": work_done, "left": time.time()},
               os.path.join(result_dir, f"rank{rank}.pt"))
