"""``dsfnet`` inside a process group created here, also for one process (``torchrun --nproc_per_node 1 THIS ...``).

torchrun with one process gives dsfnet no process group (it then trains without DDP); one GPU can run only one
NCCL rank, so the ``cuda`` tests create the group here to run NCCL, DDP and the collective calls on one GPU
(gloo on a machine without CUDA, as in the dry run).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from dsfnet.cli import main

if __name__ == "__main__":
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    sys.exit(main(sys.argv[1:]))
