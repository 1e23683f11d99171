"""The held-out evaluation command end to end on a tiny test set: tables, the bound, the plots."""

import json

import torch

from dfd_depth_ros.network import DfDNet, ModelConfig
from training import evaluate as ev
from training.data import ClipSetConfig


def test_report_has_every_schedule_the_bound_and_three_plots(tmp_path, monkeypatch):
    tiny = ClipSetConfig(split="test", clips=5, frames=3, width_px=64, height_px=48, shard_clips=5)
    monkeypatch.setattr(ev, "TEST_SET", tiny)
    runs = tmp_path / "runs"
    (runs / "dfd_recurrent").mkdir(parents=True)
    cfg = ModelConfig(widths=(8, 8, 8), hidden=8, sharpness=True)  # untrained: only the plumbing is under test
    torch.save({"model": DfDNet(cfg).state_dict(), "model_config": cfg.to_dict()}, runs / "dfd_recurrent" / "last.pt")
    results = ev.evaluate(runs, tmp_path / "cache")
    report = ev.write_report(results, tmp_path / "docs", "python -m training.evaluate")
    text = report.read_text()
    for section in ("## overall", "## fixed", "## sweep", "## focal_stack", "## rack", "## af_hunt",
                    "## measurable pixels only"):
        assert section in text
    assert "| depth_from_focus |" in text and f"*{ev.ORACLE} (reference, not a method)*" in text
    assert "| dfd_recurrent |" in text and f"| {ev.RESET} |" in text
    assert "Not evaluated (no trained checkpoint in runs/): dfd_single_frame, monocular" in text
    for name in ("error_vs_depth.png", "error_vs_frame.png", "error_vs_sensitivity.png"):
        assert (tmp_path / "docs" / "img" / name).stat().st_size > 1000
    saved = json.loads((tmp_path / "docs" / "results.json").read_text())
    oracle = saved["methods"][ev.ORACLE]["overall"]
    # At 64x48 the blur is tiny, so even the bound is poor; it must still be a number.
    assert oracle["abs_rel"] >= 0.0 and 0.0 <= oracle["delta1"] <= 1.0
