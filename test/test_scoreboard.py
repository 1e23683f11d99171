"""The benchmark scoreboard: references apart from methods, holes marked and filled, groups from the bag meta."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfd_depth_ros.evaluation.scoreboard import scoreboard_markdown
from dfd_depth_ros.metrics import frame_metrics


def _doc(bag: str, schedule: str, motion: str, regime: str, recurrent: float, missing: float = 0.0) -> dict:
    row = {"abs_rel": recurrent, "abs_rel_filled": recurrent + missing, "rmse": 1.0, "delta1": 0.5, "flicker": 0.1,
           "missing": missing, "frames": 10}
    ref = dict(row, abs_rel=0.8, abs_rel_filled=0.8, missing=0.0)
    return {"bag": bag, "frames": 10, "methods": {"dfd_recurrent": row},
            "references": {"median_floor": ref}, "sequence": {"schedule": schedule, "motion": motion,
                                                              "lens_regime": regime}}


def _row(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_groups_marks_and_references():
    docs = [_doc("a", "sweep", "static", "normal", 0.2), _doc("b", "rack", "pan", "normal", 0.4, missing=0.1),
            _doc("c", "sweep", "slide", "weak", 0.6)]
    text = scoreboard_markdown(docs)
    # overall over all bags is frame-weighted: (0.2 + 0.4 + 0.6) / 3; the 8-25 px lenses leave out the weak bag
    assert "| all bags (3) | **dfd_recurrent** | 0.400 ⚠ |" in text
    assert "| 8-25 px lenses (2) | **dfd_recurrent** | 0.300 ⚠ | 0.350 |" in text
    assert "| weak lenses (1) | **dfd_recurrent** | 0.600 |" in text
    # schedules and motions as columns, the weak bag left out of both
    assert "| method | sweep (1) | rack (1) |" in text
    assert "| method | static (1) | moving (1) |" in text
    # the reference row is italic and comes after the method
    per_bag = text[text.index("## Every bag"):]
    assert per_bag.index("**dfd_recurrent**") < per_bag.index("*median_floor (reference)*")
    assert _row(per_bag, "| b (rack, pan, normal) | **dfd_recurrent**").split(" | ")[2] == "0.400 ⚠"


def test_a_frame_without_any_prediction_counts_as_error_one_when_holes_are_filled():
    gt = np.full((4, 4), 2.0, np.float32)
    none = frame_metrics(np.full_like(gt, np.nan), gt)
    assert np.isnan(none["abs_rel"]) and none["abs_rel_filled"] == 1.0
    half = np.where(np.arange(16).reshape(4, 4) < 8, 2.2, np.nan).astype(np.float32)
    m = frame_metrics(half, gt)
    assert m["abs_rel"] == pytest.approx(0.1) and m["abs_rel_filled"] == pytest.approx(0.1)  # filled with 2.2


def test_eval_bags_writes_the_scoreboard_and_one_picture_per_bag(tmp_path):
    from dfd_depth_ros.cli import main
    from dfd_depth_ros.evaluation.bagio import write_sequence_bag
    from dfd_depth_ros.synthetic.sequences import SequenceConfig, generate_sequence

    for schedule in ("sweep", "fixed"):
        seq = generate_sequence(SequenceConfig(seed=5, num_frames=4, width_px=48, height_px=32, schedule=schedule),
                                progress=False)
        write_sequence_bag(seq, tmp_path / "bags" / schedule)
    page = tmp_path / "docs" / "benchmark.md"
    rc = main(["eval-bags", str(tmp_path / "bags"), "--out", str(tmp_path / "out"), "--baselines", "--no-plots",
               "--scoreboard", str(page)])
    assert rc == 0
    text = page.read_text()
    for name in ("dfd_recurrent", "dfd_single_frame", "depth_from_focus", "*median_floor (reference)*",
                 "*blur_oracle (reference)*"):
        assert name in text
    assert "| method | fixed (1) | sweep (1) |" in text
    for bag in ("sweep", "fixed"):
        assert Path(page.parent / "img" / "benchmark" / f"{bag}.png").stat().st_size > 1000
        assert f"![{bag}](img/benchmark/{bag}.png)" in text
