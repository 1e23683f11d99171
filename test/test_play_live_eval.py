"""`dfd-depth play` replays a contract bag over DDS into depth_node, and live_evaluator scores the node's
depth against the replayed ground truth: it agrees with eval-bag on the same bag (to 1e-6 relative: the same
float32 depth scored by the same code). Frames lost live are counted and printed; when there are any, the
frames before the first loss must still agree one by one. With --loop the stamps jump back at each wrap,
depth_node resets (time_backwards) and keeps publishing.

Every ROS process runs as a subprocess on its own ROS_DOMAIN_ID (derived from the pid, so that parallel
runs do not meet), loopback only, with the shipped Fast DDS profile. The model is an untrained DfDNet.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="needs rclpy (ros-rclpy)")

REPO = Path(__file__).resolve().parents[1]
PARAMS_YAML = REPO / "config" / "depth.yaml"
PROFILE = REPO / "config" / "fastdds_profile.xml"
DOMAIN = 150 + os.getpid() % 40
FRAMES = 6
TOLERANCE = {"rel": 1e-6, "abs": 1e-9}  # live vs offline: the same float32 depth, scored by the same code


def ros_env() -> dict:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(DOMAIN), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE), PYTHONUNBUFFERED="1",
               RCUTILS_LOGGING_BUFFERED_STREAM="0", RCUTILS_COLORIZED_OUTPUT="0")
    env.pop("ROS_LOCALHOST_ONLY", None)
    return env


def dfd_command(*args: str) -> list[str]:
    """argv running `dfd-depth ARGS` (through cli.COMMANDS once it lists play, else the module directly)."""
    from dfd_depth_ros import cli

    if "play" in cli.COMMANDS:
        return [sys.executable, "-m", "dfd_depth_ros.cli", *args]
    code = ("import argparse, sys; from dfd_depth_ros.cli import CommandError; from dfd_depth_ros.commands import "
            "play; p = argparse.ArgumentParser(); play.register(p.add_subparsers()); a = p.parse_args(sys.argv[1:])\n"
            "try: sys.exit(a.func(a))\nexcept CommandError as e: print('dfd-depth play: error:', e, file=sys.stderr);"
            " sys.exit(2)")
    return [sys.executable, "-c", code, *args]


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Listener:
    """The test's own ROS participant on DOMAIN: collects messages of the topics it is told to watch."""

    def __init__(self):
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self._saved = {k: os.environ.get(k) for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")}
        os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=DOMAIN)
        self.node = rclpy.create_node("test_listener", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.got: dict[str, list] = {}

    def watch(self, msg_type, topic: str) -> list:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.got[topic] = []
        self.node.create_subscription(msg_type, topic, self.got[topic].append,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        return self.got[topic]

    def spin_until(self, done, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done():
            if time.monotonic() > end:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)
        for k, v in self._saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def newest_status(diagnostics: list, suffix: str) -> dict[str, str]:
    """KeyValues of the newest status whose name ends with ``suffix`` among the DiagnosticArrays received."""
    for msg in reversed(diagnostics):
        for status in msg.status:
            if status.name.endswith(suffix):
                return {kv.key: kv.value for kv in status.values}
    return {}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    import torch

    from dfd_depth_ros.network import DfDNet, ModelConfig
    from training.export import export_onnx

    torch.manual_seed(0)
    return export_onnx(DfDNet(ModelConfig(widths=(8, 8, 8), hidden=8)),
                       tmp_path_factory.mktemp("model") / "untrained.onnx", height=48, width=64)


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    from dfd_depth_ros.evaluation.bagio import write_sequence_bag
    from dfd_depth_ros.synthetic.sequences import SequenceConfig, generate_sequence

    seq = generate_sequence(SequenceConfig(width_px=64, height_px=48, num_frames=FRAMES, seed=5, noise=False))
    return write_sequence_bag(seq, tmp_path_factory.mktemp("bags") / "sweep", storage="mcap")


@pytest.fixture(scope="module")
def node_log(model, tmp_path_factory):
    """depth_node in /camera, reading the bag's topics (image_raw, camera_info, lens_state)."""
    folder = tmp_path_factory.mktemp("node")
    overrides = folder / "test.yaml"
    overrides.write_text(
        "/**/depth_node:\n  ros__parameters:\n"
        f"    model_path: {model}\n    backend: onnxruntime\n    input_qos: reliable\n"
        "    diagnostics_period_s: 0.2\n    log_throttle_s: 0.0\n    lens_wait_s: 0.25\n"
        # Below one frame period: when an image overtakes its own lens sample (they are published together),
        # the node then waits for it instead of taking the previous frame's sample as "near enough".
        "    lens_tolerance_s: 0.01\n")
    log = folder / "node.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dfd_depth_ros.nodes.depth_node", "--ros-args", "--params-file",
                                 str(PARAMS_YAML), "--params-file", str(overrides), "-r", "__ns:=/camera",
                                 "-r", "image:=image_raw"], env=ros_env(), stdout=out, stderr=subprocess.STDOUT)
    yield log
    alive = proc.poll() is None
    stop(proc)
    assert alive, f"the depth node died during the tests:\n{log.read_text()}"


def test_live_evaluator_agrees_with_eval_bag(bag, model, node_log, tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray

    from dfd_depth_ros.evaluation.evaluate import MethodOptions, build_methods, evaluate_bag
    from dfd_depth_ros.metrics import FRAME_KEYS

    live_dir = tmp_path / "live"
    evaluator = subprocess.Popen(
        [sys.executable, "-m", "dfd_depth_ros.nodes.live_evaluator", "--ros-args", "-r", "__ns:=/camera",
         "-p", f"metrics_path:={live_dir / 'metrics.json'}", "-p", f"frames_path:={live_dir / 'frames.json'}",
         "-p", f"bag:={bag.name}", "-p", "exit_after_idle_s:=3.0", "-p", "diagnostics_period_s:=0.2"],
        env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    listener = Listener()
    try:
        diagnostics = listener.watch(DiagnosticArray, "/diagnostics")
        # The evaluator must hear the node's depth before the first frame is played.
        evaluator_status = lambda: newest_status(diagnostics, "live_evaluator: evaluation")  # noqa: E731
        connected = listener.spin_until(lambda: int(evaluator_status().get("depth_publishers", 0)) > 0, 60.0)
        assert connected, f"live_evaluator never connected to depth_node's depth:\n{node_log.read_text()[-2000:]}"
        player = subprocess.run(dfd_command("play", str(bag), "--rate", "0.25", "--wait-for-subscribers",
                                            "--delay-s", "0.5"), env=ros_env(), capture_output=True, text=True,
                                timeout=90)
        assert player.returncode == 0, player.stdout + player.stderr
        assert f"published {4 * FRAMES} messages on 4 topics (1 full passes)" in player.stdout
        listener.spin_until(lambda: evaluator.poll() is not None, 60.0)  # it stops 3 s after the last image
        assert evaluator.wait(timeout=5) == 0
        node = newest_status(diagnostics, "depth_node: depth")
    finally:
        listener.close()
        stop(evaluator)
    log = evaluator.stdout.read()
    assert "Traceback" not in log, log
    live = json.loads((live_dir / "metrics.json").read_text())
    frames = json.loads((live_dir / "frames.json").read_text())
    assert set(live) == {"bag", "frames", "methods"} and live["bag"] == "sweep" and list(live["methods"]) == [
        "dfd_recurrent"]

    methods, _ = build_methods(MethodOptions(model=model, backend="onnxruntime"))
    result = evaluate_bag(bag, methods)
    offline = result.metrics_json()
    scored = {f["stamp_ns"]: f for f in frames["frames_scored"]}
    lost = sorted({f.stamp_ns for f in result.frames} - set(scored))
    order = [f.stamp_ns for f in result.frames]
    ran = int(node["frames_out"])  # frames the node's estimator ran (this module's node, fresh)
    print(f"\nlive evaluation: {live['frames']} of {offline['frames']} frames scored, {len(lost)} lost live "
          f"(frames {[order.index(s) for s in lost]}; the node ran {ran}: {offline['frames'] - ran} never reached "
          f"its estimator, {ran - live['frames']} depth images lost on the way to the evaluator)")
    # How many frames are lost live depends on DDS timing: on a loaded CI machine a lens sample now and then
    # arrives after the node's wait for it (the open point of the abuse-and-load issue; 4 of 6 were lost once in
    # a full run, none in three runs alone). What this test is about is the agreement of the frames scored.
    assert live["frames"] >= 2, f"too few frames scored live: {log}\n{node_log.read_text()[-3000:]}"
    assert frames["gt_without_depth"] == len(lost) and frames["depth_without_gt"] == 0
    ours = live["methods"]["dfd_recurrent"]
    assert all(math.isfinite(v) for v in ours.values() if v is not None)
    assert ours["ms_per_frame"] is None or ours["ms_per_frame"] > 0  # the node's time, not the estimator's alone
    if ran == live["frames"]:
        # Nothing lost after the estimator: leaving out, offline, the frames it never got gives its exact run.
        if lost:
            offline = evaluate_bag(bag, methods, stamps=set(scored)).metrics_json()
        theirs = offline["methods"]["dfd_recurrent"]
        for key, value in theirs.items():
            if key != "ms_per_frame":
                expected = value if value is None else pytest.approx(value, **TOLERANCE)  # None: undefined
                assert ours[key] == expected, (key, node_log.read_text()[-3000:])
        return
    # A depth image lost after the node ran the frame: which one is unknown here, so only the frames
    # before the first loss can be compared, one by one.
    per_frame = dict(zip((f.stamp_ns for f in result.frames), result.methods["dfd_recurrent"].frame_metrics))
    for stamp in (stamp for stamp in scored if stamp < lost[0]):
        for key in FRAME_KEYS:
            assert scored[stamp][key] == pytest.approx(per_frame[stamp][key], **TOLERANCE), (stamp, key)


def test_play_loop_wraps_and_the_depth_node_resets(bag, node_log):
    from sensor_msgs.msg import Image

    from dfd_depth_ros.evaluation.bagio import read_sequence_bag
    from dfd_depth_ros.msgs.convert import stamp_to_ns
    from dfd_depth_ros.msgs.image import image_to_array

    recorded = {f.stamp_ns: f for f in read_sequence_bag(bag)}
    listener = Listener()
    images, depths = listener.watch(Image, "/camera/image_raw"), listener.watch(Image, "/camera/depth/image")
    player = subprocess.Popen(
        dfd_command("play", str(bag), "--loop", "--rate", "0.5", "--wait-for-subscribers", "--topics",
                    "/camera/image_raw", "/camera/camera_info", "/camera/lens_state"),
        env=ros_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wraps(msgs: list) -> int:
        stamps = [stamp_to_ns(m.header.stamp) for m in msgs]
        return sum(b < a for a, b in zip(stamps, stamps[1:]))

    try:
        listener.spin_until(lambda: wraps(images) >= 2 and wraps(depths) >= 2, 45.0)
    finally:
        code = stop(player)
        listener.close()
    out, err = player.communicate()
    assert wraps(images) >= 2, (out, err)
    assert {stamp_to_ns(m.header.stamp) for m in images} == set(recorded)  # the recorded stamps, unchanged
    first = images[0]
    assert (first.encoding, first.height, first.width) == ("rgb8", 48, 64)
    np.testing.assert_array_equal(image_to_array(first), recorded[stamp_to_ns(first.header.stamp)].image)
    assert wraps(depths) >= 2, f"no depth after a wrap:\n{node_log.read_text()[-3000:]}"
    assert code == 0 and "Traceback" not in err, err
    assert "published" in out and "full passes" in out, out
    assert "temporal state reset: time_backwards" in node_log.read_text()


def test_play_refuses_unknown_topics_and_broken_bags_with_one_line(bag, tmp_path):
    import argparse

    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.commands import play

    parser = argparse.ArgumentParser()
    play.register(parser.add_subparsers())
    args = parser.parse_args(["play", str(bag), "--topics", "/camera/image_raw", "/nope"])
    with pytest.raises(CommandError, match=r"has no topic /nope; its topics: /camera/camera_info \[sensor_msgs"):
        args.func(args)
    with pytest.raises(CommandError, match="is not a rosbag2 bag"):
        args.func(parser.parse_args(["play", str(tmp_path)]))
    with pytest.raises(CommandError, match="--rate"):
        args.func(parser.parse_args(["play", str(bag), "--rate", "0"]))


def test_live_scorer_pairs_by_stamp_in_either_order_and_counts_the_unpaired():
    from dfd_depth_ros.nodes.live_evaluator import LiveScorer

    gt = np.full((4, 5), 2.0, np.float32)
    scorer = LiveScorer(window=2)
    assert scorer.add_gt(1, gt) is None
    assert scorer.add_depth(1, gt * 1.1)["abs_rel"] == pytest.approx(0.1)  # ground truth first
    assert scorer.add_depth(2, gt) is None and scorer.add_gt(2, gt)["abs_rel"] == 0.0  # depth first
    for stamp in (3, 4, 5):  # the node never answered these: the oldest falls out of the window
        scorer.add_gt(stamp, gt)
    assert scorer.gt_without_depth == 3 and scorer.frames == 2
    scorer.add_depth(5, gt)
    scorer.add_gt(1, gt)  # a looped replay starts again: no flicker across the jump
    scorer.add_depth(1, gt)
    counts = scorer.counts()
    assert counts["frames"] == 4 and counts["stamp_restarts"] == 1 and counts["gt_without_depth"] == 2
    summary = scorer.summary()
    assert summary["frames"] == 4 and math.isnan(summary["ms_per_frame"])
    scorer.add_processing_time(10.0, 3)
    scorer.add_processing_time(20.0, 1)
    assert scorer.summary()["ms_per_frame"] == pytest.approx(12.5)
