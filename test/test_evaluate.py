"""The held-out evaluation command end to end on a tiny test set: tables, the bound, the plots.

The blur oracle is run without its noise: the true blur turned back into depth by the optics must
give the ground truth back, which checks that predictions and ground truth stay paired through the
whole evaluation (clip, frame, pixel) and that the numbers in the tables are the saved ones."""

import json

import torch

from dfd_depth_ros.focus_volume_network import FocusVolumeConfig, FocusVolumeNet
from training import evaluate as ev
from training.data import ClipSetConfig


def table_row(text: str, section: str, label: str) -> list[str]:
    """The cells of ``label``'s row in the first table under the heading ``section`` of results.md."""
    lines = text.split("\n")
    start = lines.index(section)
    for line in lines[start + 1:]:
        if line.startswith("## ") or line.startswith("### "):
            break
        if line.startswith(f"| {label} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row {label!r} under {section!r}")


def test_report_has_every_schedule_the_bound_and_three_plots(tmp_path, monkeypatch):
    tiny = ClipSetConfig(split="test", clips=5, frames=3, width_px=64, height_px=48, shard_clips=5)
    monkeypatch.setattr(ev, "TEST_SET", tiny)
    monkeypatch.setattr(ev, "WEAK_SET", ClipSetConfig(split="test_weak", clips=2, frames=3, width_px=64, height_px=48,
                                                      shard_clips=5, focal_length_m=0.007, f_number=1.8,
                                                      min_blur_px=0.1))
    monkeypatch.setattr(ev, "ORACLE_NOISE_PX", 0.0)  # the exact blur: a known answer, the ground truth
    monkeypatch.setattr(ev, "MODELS_DIR", tmp_path / "models")  # nothing shipped: only what runs/ holds is evaluated
    runs = tmp_path / "runs"
    (runs / "dfd_recurrent").mkdir(parents=True)
    cfg = FocusVolumeConfig(width=8)  # untrained (its physics estimate): the plumbing is under test
    torch.save({"model": FocusVolumeNet(cfg).state_dict(), "model_config": cfg.to_dict()},
               runs / "dfd_recurrent" / "last.pt")
    results = ev.evaluate(runs, tmp_path / "cache")
    report = ev.write_report(results, tmp_path / "docs", "python -m training.evaluate")
    text = report.read_text()
    for section in ("## overall", "## fixed", "## sweep", "## focal_stack", "## rack", "## af_hunt",
                    "## weak_lens", "## measurable pixels only"):
        assert section in text
    assert "| depth_from_focus |" in text and f"*{ev.ORACLE} (reference, not a method)*" in text
    assert "| dfd_recurrent |" in text and "| classical_dfd |" in text
    # no single-frame checkpoint: dfd_recurrent's weights with the state zeroed stand in; no monocular anywhere
    assert "| dfd_single_frame |" in text and f"| {ev.RESET} |" not in text
    assert "Not evaluated (no checkpoint in runs/ or models/): monocular" in text
    for name in ("error_vs_depth.png", "error_vs_frame.png", "error_vs_sensitivity.png"):
        assert (tmp_path / "docs" / "img" / name).stat().st_size > 1000
    saved = json.loads((tmp_path / "docs" / "results.json").read_text())
    # Noise-free blur inverted by the optics is the ground truth (float32 round-off only), in every schedule.
    for sched, oracle in saved["methods"][ev.ORACLE].items():
        assert oracle["frames"] > 0, sched
        assert oracle["abs_rel"] < 1e-4 and oracle["rmse"] < 1e-3 and oracle["delta1"] == 1.0, (sched, oracle)
        assert oracle["missing"] == 0.0, sched
    # The untrained network is far from it: the oracle's numbers are not a default that every method gets.
    assert saved["methods"]["dfd_recurrent"]["overall"]["abs_rel"] > 0.05
    # The tables print the saved numbers.
    for name, label in (("dfd_recurrent", "dfd_recurrent"), (ev.ORACLE, f"*{ev.ORACLE} (reference, not a method)*")):
        cells = table_row(text, "## overall", label)
        m = saved["methods"][name]["overall"]
        assert cells[1:4] == [f"{m['abs_rel']:.3f}", f"{m['rmse']:.3f}", f"{m['delta1']:.3f}"], (name, cells)
