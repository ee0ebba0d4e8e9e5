"""CONTRIBUTING.md's "Adding a stage" example is real code: it runs and writes a complete dataset."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from sirst_synth.run.options import RunOptions
from sirst_synth.store.reader import open_dataset

from conftest import REPO
from support import ids, manifest, read


def contributing_stage() -> types.ModuleType:
    text = (REPO / "CONTRIBUTING.md").read_text()
    section = text[text.index("## Adding a stage"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("mirror_example")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(code, "CONTRIBUTING.md:mirror.py", "exec"), module.__dict__)
    return module


def test_the_contributing_mirror_stage_writes_mirrored_train_images(demo, tmp_path: Path):
    mirror = contributing_stage()
    out = tmp_path / "mirrored"
    summary = mirror.Mirror(mirror.MirrorParams()).run(open_dataset(demo, allow_hdf5=False), out, RunOptions(n_jobs=1))
    train = ids(demo, "50_50", "train")
    assert summary.train == 2 * len(train)
    assert ids(out, "50_50", "train") == train + [f"{i}_m" for i in train]
    first = train[0]
    assert (read(out / "images" / f"{first}_m.png") == read(demo / "images" / f"{first}.png")[:, ::-1]).all()
    assert {r["source_id"] for r in manifest(out) if r["id"].endswith("_m")} == set(train)
