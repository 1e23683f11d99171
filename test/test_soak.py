"""`dfd-depth soak`: its figures from known records, and a short run over DDS (the long runs are the command).

    dfd-depth soak --minutes 8 --model M --out out/soak      # the real soak (not in CI)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from toy_models import affine_channel_model

from dfd_depth_ros.commands.soak import summarise, verdict


def test_summary_counts_losses_latency_backlog_and_memory():
    sent = {i: i * 0.033 for i in range(100)}
    latency = {i: 0.010 + 0.0002 * i for i in range(100) if i % 10}  # every 10th frame lost; latency creeps
    rss = [(float(t), 100.0 + 0.1 * t) for t in range(60)]
    status = {"skipped_no_lens": "0", "state_resets": "1", "last_reset_reason": "gap"}
    s = summarise(sent, latency, rss, status)
    assert s["frames_sent"] == 100 and s["frames_with_depth"] == 90 and s["depth_fraction"] == 0.9
    assert s["latency_ms_p50"] == pytest.approx(20.0, abs=0.5) and s["backlog_ms"] > 10
    assert s["rss_growth_mb"] == pytest.approx(5.4, abs=0.3)  # the medians of the first and last tenth
    assert verdict(s) == ["depth for 90.0 % of frames (< 95 %)", "1 state resets (last gap)",
                          f"RSS grew {s['rss_growth_mb']} MB (>= 5 MB)"]


def test_short_soak_over_dds_writes_its_report(tmp_path):
    pytest.importorskip("rclpy", reason="needs rclpy (ros-rclpy)")
    model = affine_channel_model(tmp_path / "trivial.onnx", depth_offset_m=1.0, depth_scale_m=2.0)
    out = tmp_path / "soak"
    proc = subprocess.run([sys.executable, "-m", "dfd_depth_ros.cli", "soak", "--minutes", "0.1", "--rate", "15",
                           "--width", "160", "--height", "120", "--model", str(model), "--domain", "123",
                           "--out", str(out)], capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "soak.json").read_text())
    assert report["frames_sent"] >= 60 and report["depth_fraction"] > 0.5
    assert report["point_clouds"] > 0 and report["confidence_images"] > 0 and "rss_growth_mb" in report
    # every lens sample is sent before its image: at most one frame (or one in a hundred) may miss it in this
    # short run (the 2-minute acceptance run, `dfd-depth soak --minutes 2 --check`, allows none)
    assert int(report["node_skipped_no_lens"]) <= max(1, report["frames_sent"] // 100)
    assert (out / "soak.png").stat().st_size > 1000
