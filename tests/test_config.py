"""Config loading: YAML inheritance, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsfnet.config import ConfigError, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("[!_]*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.model.variant in ("baseline", "frame", "instance", "dsfnet")


def test_paper_variants_differ_only_in_variant():
    folder = CONFIGS[0].parent
    configs = {v: load_config(folder / f"vid_r101_{v}.yaml") for v in ("baseline", "frame", "instance", "dsfnet")}
    assert {v: c.model.variant for v, c in configs.items()} == {v: v for v in configs}
    dsfnet = configs["dsfnet"]
    assert dsfnet.model.backbone.name == "resnet101" and dsfnet.train.lr == 0.002  # 8 clips x 2.5e-4 (README)
    assert dsfnet.train.lr_steps == (109_000, 219_000) and dsfnet.train.iterations == 247_000
    assert load_config(folder / "vid_x101_dsfnet.yaml").model.backbone.name == "resnext101_32x4d"


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  backbone:\n    nmae: resnet50\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.backbone.nmae'"):
        load_config(path)


@pytest.mark.parametrize("text, key, got", [("model:\n  - variant: frame\n", "model", "list"),
                                            ("model:\n  backbone: resnet50\n", "model.backbone", "str"),
                                            ("train:\n", "train", "nothing")])
def test_a_section_that_is_not_a_mapping_names_the_file_and_key(tmp_path, monkeypatch, capsys, text, key, got):
    from dsfnet import cli

    (tmp_path / "bad.yaml").write_text(text)
    (tmp_path / "child.yaml").write_text("base: bad.yaml\n")  # the file that holds it is named, not the child
    monkeypatch.setattr(cli, "COMMANDS", ("train",))
    code = cli.main(["train", str(tmp_path / "child.yaml"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err.startswith(f"dsfnet train: error: config file {tmp_path / 'bad.yaml'}: key '{key}' must be a mapping")
    assert err.endswith(f"got {got}") and not (tmp_path / "run").exists()


def test_overrides_and_inheritance(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  lr: 0.1\n  lr_steps: [5, 10]\nmodel:\n  variant: frame\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ntrain:\n  lr: 0.2\n")
    config = load_config(tmp_path / "child.yaml", ["train.iterations=7", "model.instance_fusion.geometry=false"])
    assert config.train.lr == 0.2 and config.train.lr_steps == (5, 10) and config.model.variant == "frame"
    assert config.train.iterations == 7 and config.model.instance_fusion.geometry is False
    augmented = load_config(tmp_path / "child.yaml", ["data.augment.expand=2", "data.augment.photometric=true"])
    assert augmented.data.augment.expand == 2.0 and augmented.data.augment.photometric
    assert not augmented.data.augment.crop and config.data.augment.expand == 1.0  # off unless asked for


@pytest.mark.parametrize("override, message", [
    ("train.lr=fast", "'train.lr' must be float"),
    ("train.iterations=1.5", "'train.iterations' must be int"),
    ("model.variant=both", "model.variant must be one of"),
    ("train.nope=1", "unknown config key 'train.nope'"),
    ("model.rpn.anchor_sizes=3", "'model.rpn.anchor_sizes' must be a list"),
    ("train.lr", "must look like key=value"),
    ("data.augment.expand=0.5", r"'data.augment.expand' must be a finite number >= 1 \(1 = off\), got 0.5"),
    ("data.augment.crop=1", "'data.augment.crop' must be bool"),
    ("data.augment.colour=true", "unknown config key 'data.augment.colour'"),
    ("data.augment=true", "config key 'data.augment' must be a mapping"),
    ("model.frame_fusion.value_init=nan", r"'model.frame_fusion.value_init' must be float \(finite\)"),
])
def test_bad_values_are_rejected(tmp_path, override, message):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


DUPLICATED = "test:\n  num_frames: 3\n  sampling: stride\n  num_frames: 7\n"


@pytest.mark.parametrize("text, line, first", [
    (DUPLICATED, 4, 2),
    ("train: {lr: 0.1, lr: 0.2}\n", 1, 1),  # a flow mapping: both on one line
    ("model:\n  variant: frame\nmodel:\n  variant: dsfnet\n", 3, 1),  # a whole section twice
])
def test_duplicated_key_is_an_error_naming_file_line_and_key(tmp_path, text, line, first):
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and f"line {line}:" in message and f"first on line {first}" in message
    assert "\n" not in message and "given twice" in message


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    path = tmp_path / "merge.yaml"  # `<<:` then the same key is YAML's override, not a repeat
    path.write_text("test:\n  <<: {num_frames: 3, sampling: stride}\n  num_frames: 5\n")
    test = load_config(path).test
    assert (test.num_frames, test.sampling) == (5, "stride")


def test_duplicated_key_in_an_override_is_refused(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match=r"override 'train.lr_steps=\{a: 1, a: 2\}': key 'a' is given twice"):
        load_config(path, ["train.lr_steps={a: 1, a: 2}"])


def test_duplicated_key_through_the_command_line(tmp_path, capsys):
    from dsfnet import cli

    path = tmp_path / "dup.yaml"
    path.write_text(DUPLICATED)
    code = cli.main(["train", str(path), "--out", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err == (f"dsfnet train: error: config file {path} line 4: key 'num_frames' is given twice (first on "
                   "line 2); keep one")
    assert not (tmp_path / "run").exists()
