"""Metrics on hand-computed cases (docs/method.md section 8)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from sirst_synth.train.metrics import Scores, from_logits, from_png_mask, image_counts, match_targets


def blank(h: int = 32, w: int = 32) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


def column_blob(mask: np.ndarray, rows: range, col: int, extra: tuple[int, int] | None = None) -> None:
    """Set a vertical run of pixels (and one extra pixel) in place."""
    mask[rows.start:rows.stop, col] = True
    if extra is not None:
        mask[extra] = True


def test_target_detected_at_2_9_px() -> None:
    gt = blank()
    gt[10, 10] = True  # centroid (10, 10)
    pred = blank()
    # 9 pixels in column 13, rows 6..14, plus (10, 12): centroid (10, 12.9), 2.9 px away
    column_blob(pred, range(6, 15), 13, extra=(10, 12))
    counts = image_counts(pred, gt)
    assert counts.targets == 1 and counts.detected == 1
    assert counts.false_alarm_pixels == 0


def test_target_missed_at_3_0_px() -> None:
    gt = blank()
    gt[10, 10] = True
    pred = blank()
    pred[10, 13] = True  # exactly 3.0 px: not < 3
    counts = image_counts(pred, gt)
    assert counts.detected == 0
    assert counts.false_alarm_pixels == 1


def test_false_alarm_with_the_matched_area_still_counts() -> None:
    gt = blank()
    gt[5:7, 5:7] = True
    pred = blank()
    pred[5:7, 5:7] = True  # matched, area 4
    pred[20:22, 20:22] = True  # unmatched, also area 4: DNANet would drop it
    counts = image_counts(pred, gt)
    assert counts.detected == 1
    assert counts.false_alarm_pixels == 4
    scores = Scores()
    scores.update(pred, gt)
    assert scores.result()["Fa"] == pytest.approx(1e6 * 4 / (32 * 32))


def test_two_predictions_near_one_target_match_once() -> None:
    gt = blank()
    gt[10, 10] = True
    pred = blank()
    pred[10, 11] = True  # 1 px away: the match
    pred[10, 8] = True  # 2 px away: also close, but the target is taken -> false alarm
    counts = image_counts(pred, gt)
    assert counts.targets == 1 and counts.detected == 1
    assert counts.false_alarm_pixels == 1


def test_greedy_matching_prefers_the_nearest_pair() -> None:
    # Targets A (10,10) and B (10,13). Prediction P (10,12) is 2 px from A and 1 px from B;
    # Q (12,10) is 2 px from A only. First-found matching in label order (BasicIRSTD) gives P
    # to A and misses B; nearest-first gives P to B and Q to A.
    gt = blank()
    gt[10, 10] = gt[10, 13] = True
    pred = blank()
    pred[10, 12] = pred[12, 10] = True
    counts = image_counts(pred, gt)
    assert counts.targets == 2 and counts.detected == 2
    assert counts.false_alarm_pixels == 0


def test_match_targets_uses_each_index_once() -> None:
    gt = np.array([[0.0, 0.0], [0.0, 1.0]])
    pred = np.array([[0.0, 0.5]])
    assert match_targets(gt, pred) == [(0, 0)]


def test_empty_prediction() -> None:
    gt = blank()
    gt[3:5, 3:5] = True
    scores = Scores()
    counts = scores.update(blank(), gt)
    assert counts.iou == 0.0
    result = scores.result()
    assert result["mIoU"] == 0.0 and result["nIoU"] == 0.0
    assert result["Pd"] == 0.0 and result["Fa"] == 0.0
    assert result["targets"] == 1 and result["images"] == 1


def test_image_without_targets_counts_false_alarms_only() -> None:
    pred = blank()
    pred[0:3, 0:3] = True
    counts = image_counts(pred, blank())
    assert counts.targets == 0 and counts.detected == 0
    assert counts.false_alarm_pixels == 9
    assert counts.iou == 0.0


def test_empty_gt_and_empty_prediction_is_left_out_of_niou() -> None:
    gt = blank()
    gt[4:6, 4:6] = True
    pred = blank()
    pred[4:6, 4:5] = True  # IoU 2/4
    scores = Scores()
    scores.update(pred, gt)
    assert scores.update(blank(), blank()).iou is None
    result = scores.result()
    assert result["nIoU"] == pytest.approx(50.0)  # not (0.5 + 1) / 2, not (0.5 + 0) / 2
    assert result["mIoU"] == pytest.approx(50.0)
    assert result["images"] == 2


def test_nothing_to_measure_is_nan() -> None:
    scores = Scores()
    scores.update(blank(), blank())
    result = scores.result()
    assert math.isnan(result["mIoU"]) and math.isnan(result["nIoU"]) and math.isnan(result["Pd"])
    assert result["Fa"] == 0.0


def test_two_images_of_different_sizes() -> None:
    # image 1: 10x10, target 2x2 fully predicted, plus a 3-pixel false alarm
    gt1 = blank(10, 10)
    gt1[1:3, 1:3] = True
    pred1 = gt1.copy()
    pred1[8, 5:8] = True
    # image 2: 20x30, two targets; one predicted by half (IoU of image 1/2), one missed
    gt2 = blank(20, 30)
    gt2[5:7, 5:7] = True
    gt2[15, 25] = True
    pred2 = blank(20, 30)
    pred2[5:7, 5] = True
    scores = Scores()
    scores.update(pred1, gt1)
    scores.update(pred2, gt2)
    result = scores.result()
    # mIoU: (4 + 2) / (7 + 5); nIoU: mean(4/7, 2/5)
    assert result["mIoU"] == pytest.approx(100 * 6 / 12)
    assert result["nIoU"] == pytest.approx(100 * (4 / 7 + 2 / 5) / 2)
    # Pd: 2 of 3 targets; (5.5, 5) is 0.5 px from (5.5, 5.5)
    assert result["Pd"] == pytest.approx(100 * 2 / 3)
    # Fa: 3 false-alarm pixels over 100 + 600 pixels, each image with its own size
    assert result["Fa"] == pytest.approx(1e6 * 3 / 700)
    assert result["images"] == 2 and result["targets"] == 3


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same"):
        image_counts(blank(4, 4), blank(4, 5))


def test_binarisation_thresholds() -> None:
    assert from_logits(np.array([-0.1, 0.0, 0.1])).tolist() == [False, False, True]
    assert from_png_mask(np.array([0, 127, 128, 255], np.uint8)).tolist() == [False, False, True, True]


def test_metrics_module_does_not_import_torch() -> None:
    code = "import sys, sirst_synth.train.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
