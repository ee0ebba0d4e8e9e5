"""SIRST (idx_427): variable sizes, modes L/RGB/RGBA/P, and the known bad mask of Misc_111."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import SIRST, need, run_cli, tree_digest
from support import expected_gray_displaced, ids, manifest


@pytest.fixture(scope="module")
def sirst():
    root = need(SIRST)
    before = tree_digest(root)
    yield root
    assert tree_digest(root) == before, "SIRST source folder changed"


def test_bad_mask_stops_the_build_with_one_clear_line(sirst, tmp_path):
    out = tmp_path / "out"
    result = run_cli("build", "--src", sirst, "--split", "idx_427", "-o", out, expect=1)
    lines = [line for line in result.output.splitlines() if "Misc_111" in line]
    assert len(lines) == 1 and "592x400" in lines[0] and "325x220" in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.slow  # a full 5562-image build
def test_skip_invalid_builds_5562_and_records_the_skipped_id(sirst, tmp_path):
    out = tmp_path / "out"
    run_cli("build", "--src", sirst, "--split", "idx_427", "-o", out, "--skip-invalid", "-j", "2")
    train, test = ids(out, "idx_427", "train"), ids(out, "idx_427", "test")
    assert len(train) == 5562 and "Misc_111" not in test and len(test) == 85
    info = json.loads((out / "sirst-synth.json").read_text())
    assert [s["id"] for s in info["source"]["skipped_invalid"]] == ["Misc_111"]
    rows = {r["id"]: r for r in manifest(out)}
    modes = {}
    for r in rows.values():
        if r["kind"] == "displaced":
            modes.setdefault(Image.open(sirst / "images" / f"{r['source_id']}.png").mode, r)
    assert set(modes) == {"L", "RGB", "RGBA", "P"}
    for mode, r in modes.items():
        out_img = Image.open(out / "images" / f"{r['id']}.png")
        assert out_img.mode == "L"  # generated images are 8-bit gray whatever the source's mode
        assert np.array_equal(np.asarray(out_img), expected_gray_displaced(sirst, r, 8)), (mode, r["id"])
