"""``import dsfnet``: the public names, loaded lazily so that ``dsfnet --help`` imports no torch."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import dsfnet

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, sys, time
start = time.perf_counter()
import dsfnet
from dsfnet.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
seconds = time.perf_counter() - start
heavy = sorted(m for m in ("torch", "torchvision", "matplotlib", "av") if m in sys.modules)
print(json.dumps({"heavy": heavy, "seconds": seconds, "names": dsfnet.__all__}))
"""


def _probe(code: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_and_help_do_not_import_torch():
    found = _probe(_PROBE)
    assert found["heavy"] == []
    assert {"load_config", "build_model", "load_model", "VideoPredictor", "evaluate", "bundled_checkpoint"} <= \
        set(found["names"])


def test_a_public_name_imports_its_module_on_first_use():
    found = _probe("import json, sys, dsfnet\nbefore = 'torch' in sys.modules\ndsfnet.VideoPredictor\n"
                   "print(json.dumps({'before': before, 'after': 'torch' in sys.modules}))")
    assert found == {"before": False, "after": True}


def test_every_public_name_resolves_to_its_definition():
    from dsfnet.config import load_config
    from dsfnet.inference.predictor import VideoPredictor

    assert dsfnet.load_config is load_config and dsfnet.VideoPredictor is VideoPredictor
    for name in dsfnet.__all__:
        assert getattr(dsfnet, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'not_public'"):
        dsfnet.not_public  # noqa: B018


def test_from_checkpoint_loads_the_checkpoint_and_takes_the_options():
    import torch

    path = dsfnet.bundled_checkpoint("dsfnet", backbone="tiny")
    predictor = dsfnet.VideoPredictor.from_checkpoint(path, score_thresh=0.3, num_frames=3)
    model, config = dsfnet.load_model(path)
    assert predictor.score_thresh == 0.3 and predictor.test.num_frames == 3
    assert len(predictor.class_names) == config.model.num_classes
    for (name, mine), (_, theirs) in zip(predictor.model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(mine, theirs), name


def test_bundled_checkpoint_names_the_choices():
    assert dsfnet.bundled_checkpoint().is_file()
    with pytest.raises(ValueError, match="light, tiny"):
        dsfnet.bundled_checkpoint(backbone="huge")
