"""Small units of the interop package: the layout names, components, box conventions."""
from __future__ import annotations

import numpy as np

from sirst_synth.interop.boxes import coco_box, components, voc_box, yolo_line
from sirst_synth.interop.exporters import EXPORTERS
from sirst_synth.interop.importers import READERS
from sirst_synth.interop.layouts import IMPORT_LAYOUTS, LAYOUTS
from sirst_synth.method.targets import find_targets


def test_the_layout_names_are_those_of_the_readers_and_writers():
    assert tuple(sorted(EXPORTERS)) == LAYOUTS
    assert tuple(READERS) == IMPORT_LAYOUTS


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
