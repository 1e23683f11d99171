"""The `dfd-depth` console script as a user runs it: help, the demo main job, preview and errors."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

EXE = Path(sys.executable).with_name("dfd-depth")


def dfd(*args, check=True):
    cmd = [str(EXE) if EXE.exists() else sys.executable, *([] if EXE.exists() else ["-m", "dfd_depth_ros.cli"]), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_help_lists_the_commands():
    out = dfd("--help").stdout
    for name in ("demo", "make-bag", "preview", "bench"):
        assert name in out


def test_demo_runs_the_pipeline_over_dds_and_writes_its_results(tmp_path):
    """The README's main job on small settings: bag and previews, then depth over DDS to a consumer process."""
    from dfd_depth_ros.network import DfDNet
    from training.export import export_onnx

    model = export_onnx(DfDNet(), tmp_path / "untrained.onnx", height=64, width=96)
    out = tmp_path / "demo"
    proc = dfd("demo", "--out", str(out), "--model", str(model), "--frames", "8", "--width", "96", "--height", "64")
    summary = json.loads((out / "summary.json").read_text())
    assert proc.stdout.strip().endswith("}") and json.loads(proc.stdout[proc.stdout.index("{\n"):]) == summary
    for key in ("frames_published", "depth_received", "points_received", "abs_rel", "delta1", "fps",
                "latency_ms_p50", "latency_ms_p95", "backend"):
        assert key in summary, key
    assert summary["frames"] == 8 and summary["size"] == [96, 64] and summary["bag_round_trip_identical"] is True
    assert summary["frames_published"] == 8 and 0 < summary["depth_received"] <= 8 and summary["points_received"] > 0
    assert math.isfinite(summary["abs_rel"]) and summary["abs_rel"] > 0 and 0 <= summary["delta1"] <= 1
    assert summary["fps"] > 0 and 0 < summary["latency_ms_p50"] <= summary["latency_ms_p95"] < 5000
    assert summary["backend"] == "onnxruntime"
    strip = cv2.imread(str(out / "depth_strip.png"))
    assert strip is not None and strip.shape[0] > 300 and strip.shape[1] > 400
    ply = (out / "points.ply").read_bytes()
    header = ply[: ply.index(b"end_header\n") + len(b"end_header\n")].decode("ascii")
    vertices = int(re.search(r"element vertex (\d+)", header).group(1))
    assert 0 < vertices <= 96 * 64 and "property uchar red" in header
    points = np.frombuffer(ply[len(header):], dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
    assert len(points) == vertices and np.isfinite(points["xyz"]).all() and (points["xyz"][:, 2] > 0).all()
    png = cv2.imread(str(out / "preview.png"))
    assert png is not None and png.shape[0] > 200 and png.shape[1] > 400
    cap = cv2.VideoCapture(str(out / "preview.mp4"))
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (64, 3 * 96)
    assert "Traceback" not in proc.stderr and not list(out.glob("consumer.json"))


def test_demo_with_a_missing_model_stops_with_one_line(tmp_path):
    proc = dfd("demo", "--out", str(tmp_path / "d"), "--model", str(tmp_path / "none.onnx"), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"dfd-depth demo: error: model file {tmp_path / 'none.onnx'} does not exist"


def test_preview_refuses_a_non_empty_folder_with_one_line(tmp_path):
    (tmp_path / "x.txt").write_text("mine")
    proc = dfd("preview", "--out", str(tmp_path), "--frames", "2", check=False)
    assert proc.returncode == 2
    assert "not empty" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "x.txt").read_text() == "mine"


def test_bad_option_value_is_one_line(tmp_path):
    proc = dfd("make-bag", "--out", str(tmp_path / "b"), "--width", "0", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "size" in proc.stderr
