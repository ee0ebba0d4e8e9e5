"""Small units of the interop package: safe ids, components, box conventions."""
from __future__ import annotations

import numpy as np
import pytest

from sirst_synth.interop.boxes import coco_box, components, voc_box, yolo_line
from sirst_synth.interop.ids import IdError, flat_name, flat_names, id_problem
from sirst_synth.method.targets import find_targets


@pytest.mark.parametrize("id_", ["000001", "Misc_1", "44/1(814)", "a b/c-d.e", "IRDST/7/2(1)"])
def test_safe_ids(id_):
    assert id_problem(id_) is None and "/" not in flat_name(id_)


@pytest.mark.parametrize("id_", ["", "..", "../x", "x/..", "/abs", "a//b", "a/", "./a", "a\\b", "C:x", "a\x00b", "a\tb"])
def test_unsafe_ids(id_):
    assert id_problem(id_) is not None


def test_flat_names_are_injective_or_refused():
    assert flat_names(["44/1(814)", "44/1(815)"]) == {"44/1(814)": "44__1(814)", "44/1(815)": "44__1(815)"}
    with pytest.raises(IdError, match="both map"):
        flat_names(["a/b", "a__b"])


def test_components_match_find_targets_and_box_conventions():
    rng = np.random.default_rng(3)
    mask = (rng.random((40, 50)) > 0.93).astype(np.uint8) * 255
    comps = components(mask)
    assert [(c.row, c.col, c.area) for c in comps] == [(t.cy, t.cx, t.area) for t in find_targets(mask)]
    one = np.zeros((10, 20), np.uint8)
    one[2:5, 3:7] = 255  # rows 2..4, columns 3..6
    (c,) = components(one)
    assert coco_box(c) == [3, 2, 4, 3] and voc_box(c) == (4, 3, 7, 5)
    assert yolo_line(c, 20, 10) == "0 0.250000 0.350000 0.200000 0.300000"
    assert components(np.zeros((5, 5), np.uint8)) == []
