"""The `dfd-depth` console script as a user runs it: help, the demo main job, preview and errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2

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


def test_demo_writes_bag_preview_and_summary(tmp_path):
    out = tmp_path / "demo"
    dfd("demo", "--out", str(out), "--frames", "6", "--width", "96", "--height", "64")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["size"] == [96, 64]
    assert summary["bag_round_trip_identical"] is True
    assert summary["blur_px_p50_p99"][1] > 0
    png = cv2.imread(str(out / "preview.png"))
    assert png is not None and png.shape[0] > 200 and png.shape[1] > 400
    cap = cv2.VideoCapture(str(out / "preview.mp4"))
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (64, 3 * 96)


def test_preview_refuses_a_non_empty_folder_with_one_line(tmp_path):
    (tmp_path / "x.txt").write_text("mine")
    proc = dfd("preview", "--out", str(tmp_path), "--frames", "2", check=False)
    assert proc.returncode == 2
    assert "not empty" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "x.txt").read_text() == "mine"


def test_bad_option_value_is_one_line(tmp_path):
    proc = dfd("make-bag", "--out", str(tmp_path / "b"), "--width", "0", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "size" in proc.stderr
