"""A damaged torch file the user names (backbone weights, a checkpoint) is refused in one line naming it, without
torch's advice to load it with ``weights_only=False`` and before anything is written."""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dsfnet.errors import InputError
from dsfnet.torch_files import load_torch_file

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny.yaml")
ENV = dict(os.environ, PYTHONPATH=str(REPO))


def _damaged(folder: Path, kind: str) -> Path:
    """A file of random bytes (torch's unpickler fails with a six-line message) or of text (``KeyError: '101'``)."""
    path = folder / f"{kind}.pth"
    if kind == "random":
        path.write_bytes(random.Random(0).randbytes(5000))
    else:
        path.write_text("these are not the weights you are looking for\n" * 20)
    return path


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from dsfnet.data.synth import generate_synthetic_vid

    return generate_synthetic_vid(tmp_path_factory.mktemp("synth") / "vid", num_videos=1, seed=0, num_val_videos=1,
                                  num_frames=4, num_det_images=1)


@pytest.mark.parametrize("kind, backbone", [("random", "resnet50"), ("text", "timm:efficientnet_lite0")])
def test_damaged_backbone_weights_are_one_line_through_the_cli(tmp_path, synth_root, kind, backbone):
    if backbone.startswith("timm:"):
        pytest.importorskip("timm")
    weights = _damaged(tmp_path, kind)
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "dsfnet", "train", TINY, "--out", str(out), "--device", "cpu",
                           "--opts", f"data.root={synth_root}", f"model.backbone.name={backbone}",
                           "model.backbone.norm=batch_norm", f"model.backbone.weights={weights}"],
                          env=ENV, capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 2 and "\n" not in err, err
    assert err == (f"dsfnet train: error: backbone weights file {weights} is not a readable torch file (corrupt, "
                   "truncated or another format)")
    assert not out.exists()


def test_a_file_holding_python_objects_is_named_not_unpickled(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(InputError) as error:
        load_torch_file(path, "checkpoint")
    assert str(error.value) == (f"checkpoint {path} is not a readable torch file (it holds the Python object "
                                "argparse.Namespace, not only tensors)")


@pytest.mark.parametrize("kind", ["random", "text"])
def test_damaged_checkpoint_is_one_line_without_torchs_advice(tmp_path, kind):
    from dsfnet.engine.checkpoint import load_checkpoint

    path = _damaged(tmp_path, kind)
    with pytest.raises(InputError) as error:
        load_checkpoint(path)
    assert str(error.value) == f"checkpoint {path} is not a readable torch file (corrupt, truncated or another format)"
