"""docs/interop.md's commands for DNANet, BasicIRSTD, SCTransNet and MSHNet, run as written in a fake
clone of each trainer holding the dataset folders it ships: the export (or ``build --layout``) adds
its dataset beside them without ``--force``, the shipped folders stay byte-identical, and each
trainer's loader (re-written from its repository, as in test_interop_export.py) reads what was
written, with the arguments of the documented ``python`` lines and the script edits the docs give.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_interop_export import basicirstd_item, dnanet_item, dnanet_load

from sirst_synth.store.fingerprint import per_image_norm_cfg
from sirst_synth.store.reader import open_dataset

from conftest import REPO, run_cli, tree_digest
from support import ids

DOCS = REPO / "docs" / "interop.md"
#: build options the tests add to the documented ``build`` lines (the demo source is small)
SMALL_BUILD = ("--total", "60", "-j", "1")

#: what each trainer's public repository ships in its dataset root: folder -> {dataset: files}
SHIPPED: dict[str, dict[str, dict[str, bytes]]] = {
    "DNANet/dataset": {
        name: {f"{split}/train.txt": b"a\nb\n", f"{split}/test.txt": b"c\n", f"images/{first}.png": b"png",
               f"masks/{first}.png": b"png", "value_result/1.log": b"1", "visulization_result/1.log": b"1"}
        for name, split, first in (("NUAA-SIRST", "50_50", "Misc_1"), ("NUDT-SIRST", "50_50", "000001"),
                                   ("NUST-SIRST", "10000_100", "000000_1"))
    },
    "BasicIRSTD/datasets": {
        folder: {f"img_idx/train_{name}.txt": b"a\nb\n", f"img_idx/test_{name}.txt": b"c\n"}
        for folder, name in (("IRDST", "IRDST-real"), ("IRSTD-1K", "IRSTD-1K"), ("NUAA-SIRST", "NUAA-SIRST"),
                             ("NUDT-SIRST", "NUDT-SIRST"), ("NUDT-SIRST-Sea", "NUDT-SIRST-Sea"), ("SIRST3", "SIRST3"))
    },
    "SCTransNet/datasets": {"SIRST3": {"img_idx/train_SIRST3.txt": b"a\nb\n", "img_idx/test_SIRST3.txt": b"c\n"}},
    # MSHNet ships no dataset: a folder a user put there beside ours
    "MSHNet/datasets": {"IRSTD-1k": {"trainval.txt": b"a\n", "test.txt": b"c\n", "images/a.png": b"png"}},
}


# -- the docs ---------------------------------------------------------------------------------------

def section(title: str) -> str:
    """The text of the section of docs/interop.md headed ``title`` (``###`` or ``####``), up to the
    next heading of its level or above."""
    lines = DOCS.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("#") == f" {title}" and line.startswith("###"))
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("#") and len(lines[i]) - len(lines[i].lstrip("#")) <= level), len(lines))
    return "\n".join(lines[start:end])


def code_lines(text: str) -> list[str]:
    """The lines of the indented code blocks, unindented, comments kept, blank lines dropped."""
    return [line[4:] for line in text.splitlines() if line.startswith("    ") and line.strip()]


def commands(title: str) -> list[str]:
    """The shell lines (``sirst-synth``, ``cd``, ``python``) of a section's code blocks, in order."""
    return [line for line in code_lines(section(title)) if line.split(" ", 1)[0] in ("sirst-synth", "cd", "python")]


def edits(title: str) -> dict[str, list[str]]:
    """The script lines a section gives, by file: the lines after a ``# <file>`` comment."""
    found: dict[str, list[str]] = {}
    current = None
    for line in code_lines(section(title)):
        if line.startswith("# "):
            current = line[2:].split(",")[0].split(" ")[0]
            found.setdefault(current, [])
        elif current and line.split(" ", 1)[0] not in ("sirst-synth", "cd", "python"):
            found[current].append(line.strip())
    return found


# -- a workspace: the datasets and the trainers' clones --------------------------------------------

@pytest.fixture(scope="module")
def built(demo: Path, tmp_path_factory) -> Path:
    """The ``SIRST-5K`` of the docs: a small build of the demo data."""
    out = tmp_path_factory.mktemp("trainers") / "SIRST-5K"
    run_cli("build", "--src", demo, "-o", out, *SMALL_BUILD)
    return out


def make_clone(root: Path) -> dict[str, str]:
    """Every trainer's dataset root with the folders it ships; return each shipped folder's digest."""
    digests = {}
    for where, datasets in SHIPPED.items():
        for name, files in datasets.items():
            for rel, data in files.items():
                path = root / where / name / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            digests[f"{where}/{name}"] = tree_digest(root / where / name)
    return digests


@pytest.fixture
def workspace(tmp_path: Path, built: Path, demo: Path, monkeypatch) -> Path:
    """A folder holding ``SIRST-5K`` (a build), ``NUDT-SIRST`` (a source) and the four clones; the cwd."""
    os.symlink(built, tmp_path / "SIRST-5K")
    os.symlink(demo, tmp_path / "NUDT-SIRST")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_section(title: str, root: Path, monkeypatch, python: Callable[[str, list[str]], None] | None = None) -> list[str]:
    """Run a section's commands in ``root`` as a shell would (``cd`` moves, ``python`` lines go to
    ``python``); return the outputs of the ``sirst-synth`` lines."""
    outputs = []
    for line in commands(title):
        argv = shlex.split(line.replace("<date>", "01_01_2025_00_00_00").replace("<time>", "2025-01-01"))
        assert "--force" not in argv, line
        if argv[0] == "cd":
            monkeypatch.chdir(Path.cwd() / argv[1])
        elif argv[0] == "python":
            assert python is not None, line
            python(argv[1], argv[2:])
        else:
            extra = SMALL_BUILD if argv[1] == "build" else ()
            outputs.append(run_cli(*argv[1:], *extra).output)
    monkeypatch.chdir(root)
    return outputs


def assert_shipped_unchanged(root: Path, before: dict[str, str]) -> None:
    assert {k: tree_digest(root / k) for k in before} == before


# -- each trainer's scripts, as far as they read the dataset -----------------------------------------

def dnanet(built: Path) -> Callable[[str, list[str]], None]:
    """DNANet's train.py / test.py (argument names of model/parse_args_*.py): the lists and pairs they
    read, and the files test.py writes into ``value_result/`` (scipy's savemat adds ``.mat``)."""
    def run(script: str, argv: list[str]) -> None:
        parser = argparse.ArgumentParser()
        for name in ("--root", "--dataset", "--split_method", "--mode", "--st_model", "--model_dir"):
            parser.add_argument(name)
        args, _ = parser.parse_known_args(argv)
        assert args.mode == "TXT"
        dataset_dir = args.root + "/" + args.dataset
        train, test = dnanet_load(args.root, args.dataset, args.split_method)
        assert train == ids(built, "50_50", "train") and test == ids(built, "50_50", "test")
        for id_ in (train if script == "train.py" else test):
            img, mask = dnanet_item(dataset_dir, id_)
            assert img.ndim == 3 and mask.shape[0] == 1
        if script == "test.py":
            with open(dataset_dir + "/" + "value_result" + "/" + args.st_model + "_PD_FA_" + str(255) + ".mat", "wb") as f:
                f.write(b"MATLAB 5.0 MAT-file")
            for log in ("_best_IoU.log", "_best_other_metric.log"):
                with open(dataset_dir + "/" + "value_result" + "/" + args.st_model + log, "a") as f:
                    f.write("0.5\n")
    return run


def basicirstd_lists(dataset_dir: str, dataset_name: str) -> tuple[list[str], list[str]]:
    """BasicIRSTD's TrainSetLoader / TestSetLoader: ``<dir>/<name>/img_idx/{train,test}_<name>.txt``."""
    root = dataset_dir + "/" + dataset_name
    with open(root + "/img_idx/train_" + dataset_name + ".txt") as f:
        train = f.read().splitlines()
    with open(root + "/img_idx/test_" + dataset_name + ".txt") as f:
        test = f.read().splitlines()
    return train, test


def get_img_norm_cfg_fallback(dataset_name: str, dataset_dir: str) -> dict[str, float]:
    """The ``else`` branch of BasicIRSTD's (and SCTransNet's) ``get_img_norm_cfg``."""
    train, test = basicirstd_lists(dataset_dir, dataset_name)
    means, stds = [], []
    for img_pth in train + test:
        img = np.array(Image.open((dataset_dir + "/" + dataset_name + "/images/" + img_pth).replace("//", "/") + ".png")
                       .convert("I"), dtype=np.float32)
        means.append(img.mean())
        stds.append(img.std())
    return {"mean": float(np.array(means).mean()), "std": float(np.array(stds).mean())}


def check_basicirstd_dataset(built: Path, dataset_dir: str, name: str) -> None:
    train, test = basicirstd_lists(dataset_dir, name)
    assert train == ids(built, "50_50", "train") and test == ids(built, "50_50", "test")
    for id_ in train + test:
        img, mask = basicirstd_item(dataset_dir + "/" + name, id_)
        assert img.ndim == 2 and set(np.unique(mask)) <= {0.0, 1.0}


def basicirstd(built: Path) -> Callable[[str, list[str]], None]:
    """BasicIRSTD's train.py / test.py (their argparse lines for what they read)."""
    def run(script: str, argv: list[str]) -> None:
        parser = argparse.ArgumentParser()
        parser.add_argument("--model_names", default=["ACM", "ALCNet"], nargs="+")
        parser.add_argument("--dataset_names", default=["NUAA-SIRST"], nargs="+")
        parser.add_argument("--dataset_dir", default="./datasets", type=str)
        parser.add_argument("--img_norm_cfg_mean", default=None, type=float)
        parser.add_argument("--img_norm_cfg_std", default=None, type=float)
        opt = parser.parse_args(argv)
        assert opt.img_norm_cfg_mean is not None and opt.img_norm_cfg_std is not None
        for name in opt.dataset_names:
            check_basicirstd_dataset(built, opt.dataset_dir, name)
    return run


def sctransnet(built: Path, edited: dict[str, list[str]]) -> Callable[[str, list[str]], None]:
    """SCTransNet's train.py / test.py, with the lines the docs set in place of theirs, run without
    arguments as documented: the datasets they name load, and the statistics its fallback computes
    for SIRST-5K are BasicIRSTD's convention as the export recorded it."""
    #: the lines of SCTransNet's files the docs leave as they are (what they read)
    originals = {"train.py": ['parser.add_argument("--dataset_dir", default=r\'./datasets\')'], "test.py": []}

    def run(script: str, argv: list[str]) -> None:
        assert argv == []  # type=list arguments: none on the command line
        parser = argparse.ArgumentParser()
        for line in originals[script] + edited[script]:
            exec(line, {"parser": parser})  # the docs' lines, verbatim
        opt = parser.parse_args(argv)
        names = opt.dataset_names
        assert names == ["SIRST-5K"]
        for name in names:
            check_basicirstd_dataset(built, opt.dataset_dir, name)
        if script == "test.py":
            for pth_dir in opt.pth_dirs:
                train_dataset_name = pth_dir.split("/")[0]
                assert train_dataset_name == "SIRST-5K" and (opt.save_log + pth_dir).startswith("./log/")
            record = json.loads(Path(opt.dataset_dir, "SIRST-5K", "sirst-synth-export.json").read_text())
            cfg = get_img_norm_cfg_fallback("SIRST-5K", opt.dataset_dir)
            convention = record["img_norm_cfg_per_image_train_test"]
            assert cfg["mean"] == pytest.approx(convention["mean"], abs=1e-3)
            assert cfg["std"] == pytest.approx(convention["std"], abs=1e-3)
    return run


def mshnet(built: Path) -> Callable[[str, list[str]], None]:
    """MSHNet's main.py: ``IRSTD_Dataset`` reads trainval.txt (train) and test.txt (val, test)."""
    def run(script: str, argv: list[str]) -> None:
        assert script == "main.py"
        parser = argparse.ArgumentParser()
        parser.add_argument("--dataset-dir", type=str, default="/dataset/IRSTD-1k")
        parser.add_argument("--mode", type=str, default="train")
        args, _ = parser.parse_known_args(argv)
        for txtfile, part in (("trainval.txt", "train"), ("test.txt", "test")):
            with open(os.path.join(args.dataset_dir, txtfile)) as f:
                names = [line.strip() for line in f.readlines()]
            assert names == ids(built, "50_50", part)
            for name in names:
                img = Image.open(os.path.join(args.dataset_dir, "images", name + ".png")).convert("RGB")
                mask = Image.open(os.path.join(args.dataset_dir, "masks", name + ".png"))
                assert img.size == mask.size
    return run


# -- the tests -------------------------------------------------------------------------------------

def test_dnanet_commands_run_beside_its_datasets_and_verify_passes(workspace, built, monkeypatch):
    before = make_clone(workspace)
    outputs = run_section("DNANet family (DNANet, and trainers built on its code)", workspace, monkeypatch, dnanet(built))
    assert_shipped_unchanged(workspace, before)
    out = workspace / "DNANet" / "dataset" / "SIRST-5K"
    assert sorted(p.name for p in out.parent.iterdir()) == ["NUAA-SIRST", "NUDT-SIRST", "NUST-SIRST", "SIRST-5K"]
    assert sorted(p.name for p in (out / "value_result").iterdir()) == [
        "README.txt", "SIRST-5K_DNANet_01_01_2025_00_00_00_wDS_PD_FA_255.mat",
        "SIRST-5K_DNANet_01_01_2025_00_00_00_wDS_best_IoU.log",
        "SIRST-5K_DNANet_01_01_2025_00_00_00_wDS_best_other_metric.log"]
    verified = outputs[-1].splitlines()
    assert verified[0] == ("dataset/SIRST-5K/value_result/: DNANet's results, made by export --to dnanet (3 files "
                           "written by DNANet; not checked)")
    assert verified[1].startswith("verify: dataset/SIRST-5K intact: 80 images, 160 files, hashes equal")
    assert run_cli("verify", out, "--strict", "-j", "1").exit_code == 0


def test_basicirstd_commands_run_beside_its_datasets(workspace, built, monkeypatch):
    before = make_clone(workspace)
    outputs = run_section("BasicIRSTD", workspace, monkeypatch, basicirstd(built))
    assert_shipped_unchanged(workspace, before)
    assert sorted(p.name for p in (workspace / "BasicIRSTD" / "datasets").iterdir()) == [
        "IRDST", "IRSTD-1K", "NUAA-SIRST", "NUDT-SIRST", "NUDT-SIRST-Sea", "SIRST-5K", "SIRST3"]
    lines = outputs[0].splitlines()
    assert any(line.startswith("img_norm_cfg, pooled train pixels (sirst-synth's convention): mean ") for line in lines)
    assert any(line.startswith("img_norm_cfg, BasicIRSTD's convention (per-image mean and std averaged over train "
                               "+ test): mean ") for line in lines)


def test_sctransnet_commands_and_edits_run_beside_its_datasets(workspace, built, monkeypatch):
    before = make_clone(workspace)
    edited = edits("SCTransNet")
    assert set(edited) == {"train.py", "test.py"} and all(edited.values())
    run_section("SCTransNet", workspace, monkeypatch, sctransnet(built, edited))
    assert_shipped_unchanged(workspace, before)
    assert sorted(p.name for p in (workspace / "SCTransNet" / "datasets").iterdir()) == ["SIRST-5K", "SIRST3"]


def test_mshnet_commands_run_beside_other_datasets(workspace, built, monkeypatch):
    before = make_clone(workspace)
    run_section("MSHNet", workspace, monkeypatch, mshnet(built))
    assert_shipped_unchanged(workspace, before)
    assert sorted(p.name for p in (workspace / "MSHNet" / "datasets").iterdir()) == ["IRSTD-1k", "SIRST-5K"]


def test_mshnet_test_mode_edit_loads_its_own_weight_file(tmp_path):
    """main.py's test mode reads ``weight['state_dict']`` of the bare state_dict its training saves
    (``torch.save(self.model.state_dict(), .../weight.pkl)``); the docs' line loads both kinds."""
    torch = pytest.importorskip("torch")
    model = torch.nn.Conv2d(3, 1, 3)
    torch.save(model.state_dict(), tmp_path / "weight.pkl")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "released.tar")
    line = next(line for line in edits("MSHNet")["main.py"] if "load_state_dict" in line)
    for name in ("weight.pkl", "released.tar"):
        weight = torch.load(tmp_path / name)
        if name == "weight.pkl":
            with pytest.raises(KeyError, match="state_dict"):
                weight["state_dict"]  # noqa: B018  (MSHNet's own line)

        class Trainer:
            def __init__(self) -> None:
                self.model = torch.nn.Conv2d(3, 1, 3)

        self = Trainer()
        exec(line, {"self": self, "weight": weight})
        assert torch.equal(self.model.weight, model.weight)


def test_layout_builds_run_beside_every_trainers_datasets(workspace, monkeypatch):
    """The ``build --layout`` lines of the docs, into one workspace holding the four clones."""
    before = make_clone(workspace)
    run_section("build --layout", workspace, monkeypatch)
    assert_shipped_unchanged(workspace, before)
    dnanet_out = workspace / "DNANet" / "dataset" / "SIRST-5K"
    assert (dnanet_out / "value_result" / "README.txt").is_file()
    assert run_cli("verify", dnanet_out, "-j", "1").output.splitlines()[-1].startswith(f"verify: {dnanet_out} intact")
    for root in ("BasicIRSTD/datasets", "SCTransNet/datasets"):
        train, _ = basicirstd_lists(str(workspace / root), "SIRST-5K")
        assert len(train) == 60 and (workspace / root / "SIRST-5K" / "sirst-synth.json").is_file()
    assert (workspace / "MSHNet" / "datasets" / "SIRST-5K" / "trainval.txt").read_text().count("\n") == 60
    for where in ("DNANet/dataset", "BasicIRSTD/datasets", "SCTransNet/datasets", "MSHNet/datasets"):
        assert not [p.name for p in (workspace / where).iterdir() if p.name.startswith(".") or ".building" in p.name]


def test_a_second_export_of_the_same_name_is_a_clash_and_force_keeps_trainer_files(workspace, built, monkeypatch):
    make_clone(workspace)
    run_cli("export", "SIRST-5K", "--to", "dnanet", "--name", "SIRST-5K", "-o", "DNANet/dataset")
    result = run_cli("export", "SIRST-5K", "--to", "dnanet", "--name", "SIRST-5K", "-o", "DNANet/dataset", expect=1)
    assert result.output.startswith("error: DNANet/dataset/SIRST-5K: holds an earlier output of sirst-synth; use --force")
    mat = workspace / "DNANet" / "dataset" / "SIRST-5K" / "value_result" / "x_PD_FA_255.mat"
    mat.write_bytes(b"mat")
    run_cli("export", "SIRST-5K", "--to", "dnanet", "--name", "SIRST-5K", "-o", "DNANet/dataset", "--force")
    assert mat.read_bytes() == b"mat"
    result = run_cli("export", "SIRST-5K", "--to", "basicirstd", "--name", "SIRST3", "-o", "SCTransNet/datasets",
                     "--force", expect=1)
    assert result.output == ("error: SCTransNet/datasets/SIRST3: holds img_idx/ (2 files), not written by sirst-synth; "
                             "choose another --name (--force replaces only what sirst-synth wrote)\n")


def test_docs_statistics_are_those_of_the_default_build(nudt_build):
    """The numbers docs/interop.md gives (and the export prints) for the default build of NUDT-SIRST."""
    text = DOCS.read_text(encoding="utf-8")
    pooled = json.loads((nudt_build / "sirst-synth.json").read_text())["img_norm_cfg"]
    per_image = per_image_norm_cfg(open_dataset(nudt_build))
    assert f"mean {pooled['mean']:.4f}, std {pooled['std']:.4f}" in text
    flags = f"--img_norm_cfg_mean {per_image['mean']:.4f} --img_norm_cfg_std {per_image['std']:.4f}"
    assert text.count(flags) >= 3
    assert f"dict(mean={per_image['mean']:.4f}, std={per_image['std']:.4f})" in text
