"""Issue 12 for ``dsfnet train``: one run per folder (real processes), SIGTERM and resume (a real signal), stale
temporary files, the config history of resumes, a read-only folder, a full disk and Ctrl-C during a checkpoint
write, config ranges and float spellings, binary config files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dsfnet import cli
from dsfnet.config import load_config
from dsfnet.engine.checkpoint import load_checkpoint
from dsfnet.engine.run_dir import LOCK_NAME
from dsfnet.engine.trainer import train
from faulthelpers import fail_writes, make_read_only, one_line_error, snapshot
from test_train_command import TINY, synth_root  # noqa: F401 (a fixture: a small synthetic dataset)


def options(synth_root, *extra: str) -> list[str]:
    return ["--device", "cpu", "--no-progress", "--opts", f"data.root={synth_root}", "model.variant=baseline",
            "train.deterministic=true", "train.log_interval=1", "train.checkpoint_interval=2", "train.iterations=4",
            *extra]


def train_cli(*argv) -> int:
    return cli.main(["train", *map(str, argv)])


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, synth_root):
    """A run stopped after iteration 2 of 4 (``last.pth`` at 2, no ``final.pth``)."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    assert train_cli(TINY, "--out", out, "--stop-after", 2, *options(synth_root)) == 0
    return out


@pytest.fixture
def run_copy(tmp_path, stopped_run) -> Path:
    return Path(shutil.copytree(stopped_run, tmp_path / "run"))


# ---------------------------------------------------------------------------------------------- real processes
ENV = dict(os.environ, OMP_NUM_THREADS="2")  # the same threads in every process: the same float sums


def train_command(out: Path, synth_root, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dsfnet", "train", TINY, "--out", str(out), *options(synth_root, *extra)]


def start_train(out: Path, synth_root, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(train_command(out, synth_root, *extra), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_train(out: Path, synth_root, *extra: str, resume: bool = False) -> None:
    command = train_command(out, synth_root, *extra) + (["--resume"] if resume else [])
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def wait_for_training(process: subprocess.Popen, out: Path, timeout: float = 300) -> None:
    """Until the process has logged its first iteration (it holds the lock and its SIGTERM handler by then)."""
    deadline = time.monotonic() + timeout
    metrics = out / "metrics.jsonl"
    while not (metrics.is_file() and metrics.read_text().strip()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "training did not start"
        time.sleep(0.01)


def test_second_run_is_refused_and_sigterm_stops_a_run_that_resumes_exactly(tmp_path, synth_root):
    """Two real processes on one folder, then a real SIGTERM, ``--resume``, and the weights of an uninterrupted run.

    The first run is paused (SIGSTOP) while the second one tries the folder, so that it is still running then,
    however slow the machine; SIGTERM is delivered when it continues.
    """
    out, total = tmp_path / "run", 40
    extra = (f"train.iterations={total}", "train.checkpoint_interval=1000")
    first = start_train(out, synth_root, *extra)
    try:
        wait_for_training(first, out)
        first.send_signal(signal.SIGSTOP)
        config_before = (out / "config.yaml").read_bytes()
        second = start_train(out, synth_root, "train.iterations=3", "train.lr=0.5")
        _, err = second.communicate(timeout=300)
        lines = err.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, err
        assert lines[0] == (f"dsfnet train: error: run folder {out} is in use by another dsfnet train (pid "
                            f"{first.pid} on {os.uname().nodename}); wait for it to end, or choose another --out")
        assert (out / "config.yaml").read_bytes() == config_before  # the first run's settings
    finally:
        first.send_signal(signal.SIGTERM)
        first.send_signal(signal.SIGCONT)
        _, err = first.communicate(timeout=300)
    stopped_at = load_checkpoint(out / "last.pth")["iteration"]
    assert first.returncode == 128 + signal.SIGTERM and 1 <= stopped_at < total, err
    assert err.strip().splitlines()[-1] == (f"dsfnet train: stopped by SIGTERM at iteration {stopped_at}; "
                                            "continue with --resume")
    assert not (out / "final.pth").exists() and not (out / LOCK_NAME).exists()  # the lock went with the run
    iterations = [json.loads(line)["iteration"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert iterations == list(range(1, stopped_at + 1))  # one run's records, nothing interleaved

    run_train(out, synth_root, *extra, resume=True)
    config = load_config(TINY, options(synth_root, *extra)[4:])
    reference = train(config, tmp_path / "reference", device="cpu", progress=False)  # uninterrupted, 2 threads
    weights = load_checkpoint(out / "final.pth")["model"]
    expected = reference.model.state_dict()
    assert weights.keys() == expected.keys()
    assert all(torch.equal(weights[name], expected[name]) for name in expected)


# ---------------------------------------------------------------------------------------------- run folder
def test_stale_temporary_files_are_removed_when_a_run_starts(run_copy, synth_root):
    stale = [run_copy / ".last.pth.k3j9x0ab.tmp", run_copy / ".final.pth.zz_1x9qq.tmp"]
    kept = [run_copy / "notes.tmp", run_copy / ".mine.tmp", run_copy / "tb" / ".last.pth.k3j9x0ab.tmp"]
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
    assert train_cli(TINY, "--out", run_copy, "--resume", *options(synth_root)) == 0
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in kept)


def test_resume_keeps_the_original_config_and_records_its_changes(run_copy, synth_root, caplog):
    config_before = (run_copy / "config.yaml").read_bytes()
    with caplog.at_level("WARNING", logger="dsfnet.engine.trainer"):
        assert train_cli(TINY, "--out", run_copy, "--resume", *options(synth_root, "train.lr=0.005")) == 0
    assert "resuming with changed training settings: train.lr: 0.01 -> 0.005" in caplog.text
    assert (run_copy / "config.yaml").read_bytes() == config_before
    records = [json.loads(line) for line in (run_copy / "resumes.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["iteration"] == 2
    assert records[0]["changes"] == {"train.lr": [0.01, 0.005]}
    assert load_checkpoint(run_copy / "final.pth")["config"]["train"]["lr"] == 0.005


def test_read_only_run_folder_is_a_one_line_error(run_copy, synth_root, capsys, monkeypatch):
    before = snapshot(run_copy)
    make_read_only(monkeypatch, run_copy)
    code = train_cli(TINY, "--out", run_copy, "--resume", *options(synth_root))
    one_line_error(capsys, code, "train", f"cannot write {run_copy / LOCK_NAME}: read-only file system")
    code = train_cli(TINY, "--out", run_copy / "new", *options(synth_root))
    one_line_error(capsys, code, "train", f"cannot write {run_copy / 'new'}: read-only file system")
    monkeypatch.undo()
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("error, code, message", [
    (None, 2, "dsfnet train: error: no space left on device while writing {run}/last.pth"),
    (KeyboardInterrupt, 130, "dsfnet train: interrupted"),
])
def test_failed_checkpoint_write_keeps_the_previous_checkpoint(run_copy, synth_root, capsys, monkeypatch, error,
                                                               code, message):
    """A full disk, or Ctrl-C, while torch.save writes last.pth (torch itself would report "unexpected pos")."""
    before = (run_copy / "last.pth").read_bytes(), (run_copy / "config.yaml").read_bytes()
    failed = fail_writes(monkeypatch, run_copy, ".last.pth.*.tmp", error)
    assert train_cli(TINY, "--out", run_copy, "--resume", *options(synth_root)) == code
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == message.format(run=run_copy) and "Traceback" not in err, err
    assert len(failed) == 1
    assert ((run_copy / "last.pth").read_bytes(), (run_copy / "config.yaml").read_bytes()) == before
    assert not (run_copy / "final.pth").exists()
    assert sorted(p.name for p in run_copy.iterdir()) == ["config.yaml", "curves.png", "last.pth", "metrics.jsonl",
                                                           "resumes.jsonl", "tb"]


# ---------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("override, key", [
    ("train.checkpoint_interval=0", "train.checkpoint_interval"),
    ("train.log_interval=0", "train.log_interval"),
    ("train.clips_per_step=0", "train.clips_per_step"),
    ("train.iterations=0", "train.iterations"),
    ("train.iterations=-5", "train.iterations"),
    ("data.min_size=0", "data.min_size"),
    ("train.lr=-1", "train.lr"),
    ("train.lr=nan", "train.lr"),
    ("train.lr=0", "train.lr"),
])
def test_out_of_range_settings_name_the_key(tmp_path, synth_root, capsys, override, key):
    code = train_cli(TINY, "--out", tmp_path / "run", *options(synth_root, override))
    one_line_error(capsys, code, "train", f"config key '{key}' must be")
    assert not (tmp_path / "run").exists()


def test_every_float_spelling_is_accepted(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("base: " + TINY + "\ntrain:\n  lr: 1e-3\n  weight_decay: 5E-5\n")
    config = load_config(path, ["train.momentum=9e-1", "train.warmup_factor=+2.5e-1", "train.clip_grad_norm=1e1"])
    assert (config.train.lr, config.train.weight_decay) == (1e-3, 5e-5)
    assert (config.train.momentum, config.train.warmup_factor, config.train.clip_grad_norm) == (0.9, 0.25, 10.0)


@pytest.mark.parametrize("content, needle", [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "is not a text file"),
    (b"train:\n  lr: 0.1\x00\x01\n", "is not valid YAML"),
])
def test_binary_config_file_is_named(tmp_path, synth_root, capsys, content, needle):
    path = tmp_path / "binary.yaml"
    path.write_bytes(content)
    code = train_cli(path, "--out", tmp_path / "run", *options(synth_root))
    one_line_error(capsys, code, "train", str(path), needle)
