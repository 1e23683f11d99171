"""`dfd-depth demo`: the README's main job, the whole pipeline on a built-in focus sweep.

1. Renders a focus-sweep sequence with ground truth, writes it as an evaluation bag
   (DIR/bag, the contract in shared/specs/bag-contract.md), reads the bag back to check it bit
   for bit, and writes DIR/preview.png and DIR/preview.mp4.
2. Publishes the same sequence in real time with the synthetic camera (stamps from the wall
   clock) to the depth node, both in this process, over DDS: loopback only, a random
   ROS_DOMAIN_ID (or --domain-id), a namespace of its own, the shipped Fast DDS profile unless
   FASTDDS_DEFAULT_PROFILES_FILE is set. A consumer in a separate process
   (dfd_depth_ros.nodes.demo_consumer) subscribes to depth, points and depth_gt, matches depth with
   ground truth by stamp and measures abs_rel, delta1, latency (receive time - stamp) and fps.
3. Writes DIR/depth_strip.png (RGB | ground truth | predicted | error), DIR/points.ply (one
   cloud, xyz + rgb) and DIR/summary.json, and prints the summary.

Needs a model: --model PATH, or the shipped models/dfd_recurrent.onnx. Exits by itself; the
consumer process is stopped on every way out (done, error, Ctrl-C).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dfd_depth_ros.commands._common import add_sequence_args, prepare_out_dir, sequence_config

DOMAIN_RANGE = (150, 229)  # random ROS_DOMAIN_ID for the demo; the tests use 142-145, users usually 0
MATCH_TIMEOUT_S = 60.0  # DDS discovery between the processes (2-3 s unloaded)
IDLE_S = 1.0  # after the last frame: the graph is done when no depth came out for this long
DRAIN_MAX_S = 15.0


def register(sub) -> None:
    from dfd_depth_ros.backends import BACKEND_NAMES

    p = sub.add_parser("demo", help="the whole pipeline on a built-in focus sweep: bag, preview, depth over DDS, "
                                    "metrics, point cloud", description=__doc__)
    p.add_argument("--out", default="out/demo", help="output folder (default %(default)s)")
    p.add_argument("--model", help="ONNX model (default: the shipped models/dfd_recurrent.onnx)")
    p.add_argument("--backend", choices=BACKEND_NAMES, default="auto", help="inference backend (default auto)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default mcap)")
    p.add_argument("--domain-id", type=int, help=f"ROS_DOMAIN_ID (default: random in {DOMAIN_RANGE[0]}-"
                                                 f"{DOMAIN_RANGE[1]}, so parallel runs do not meet)")
    p.add_argument("--timeout-s", type=float, default=180.0,
                   help="give up when publishing and processing take longer than this (default %(default)s)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    # A real lens: 16 mm f/1.4 on a 1" sensor (13.2 mm wide: 44 degrees across), fx*D about 4.5 px*m at 320 px.
    add_sequence_args(p, frames=45, focal_length_mm=16.0, f_number=1.4, hfov_deg=44.0)
    p.set_defaults(func=run, force=True, fps=10.0)


def run(args) -> int:
    from dfd_depth_ros.cli import CommandError

    model = _model_path(args.model)
    cfg = sequence_config(args)
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        raise CommandError(f"--domain-id must be in 0..232, got {args.domain_id}")
    out = prepare_out_dir(args.out, args.force)
    summary, seq = _bag_and_preview(cfg, out, args.storage)
    print(f"wrote {summary['bag']} (read back identical: {summary['bag_round_trip_identical']}), "
          f"{summary['preview_png']}, {summary['preview_mp4']}", flush=True)
    summary |= _run_graph(seq, cfg.fps, model, args.backend, out, args.domain_id, args.timeout_s)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    ok = summary["bag_round_trip_identical"] and summary["depth_received"] > 0 and summary["points_received"] > 0
    if not ok:
        print("dfd-depth demo: the bag did not read back identical, or no depth/points arrived", file=sys.stderr)
    return 0 if ok else 1


def _model_path(given: str | None) -> Path:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.package_paths import default_model_path

    if given:
        if not Path(given).is_file():
            raise CommandError(f"model file {given} does not exist")
        return Path(given)
    path = default_model_path()
    if not path.is_file():
        raise CommandError(f"no model at {path}: train and export it (python -m training.train --config "
                           "training/configs/dfd_recurrent.yaml, then python -m training.export --checkpoint "
                           f"runs/dfd_recurrent/last.pt --out {path}) or pass --model PATH")
    return path


def _bag_and_preview(cfg, out: Path, storage: str) -> tuple[dict, object]:
    """Render the sequence, write and re-read the bag, write the previews; (summary part, sequence)."""
    from dfd_depth_ros.evaluation.bagio import read_sequence_bag, write_sequence_bag
    from dfd_depth_ros.synthetic.sequences import generate_sequence
    from dfd_depth_ros.viz import sequence_preview_mp4, sequence_preview_png

    t0 = time.perf_counter()
    seq = generate_sequence(cfg, progress=True)
    render_s = time.perf_counter() - t0
    bag = out / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    write_sequence_bag(seq, bag, storage=storage)
    back = read_sequence_bag(bag)
    identical = len(back) == len(seq) and all(
        np.array_equal(a.image, b.image) and np.array_equal(a.depth_m, b.depth_m, equal_nan=True)
        for a, b in zip(seq, back))
    png = sequence_preview_png(seq, out / "preview.png", max_blur_px=cfg.max_blur_px)
    mp4 = sequence_preview_mp4(seq, out / "preview.mp4", fps=cfg.fps, max_blur_px=cfg.max_blur_px)
    blur = np.stack([f.blur_diameter_px() for f in seq])
    lens = seq[0].lens
    return {
        "sequence": seq.name,
        "frames": len(seq),
        "size": [cfg.width_px, cfg.height_px],
        "focal_length_mm": round(lens.focal_length_m * 1e3, 2),
        "f_number": round(lens.f_number, 2),
        "fx_px": round(seq[0].fx_px, 1),
        "focus_range_m": [round(min(f.lens.focus_distance_m for f in seq), 3),
                          round(max(f.lens.focus_distance_m for f in seq), 3)],
        "depth_range_m": [round(float(np.nanmin([f.depth_m.min() for f in seq])), 3),
                          round(float(np.nanmax([f.depth_m.max() for f in seq])), 3)],
        "blur_px_p50_p99": [round(float(np.percentile(blur, 50)), 2), round(float(np.percentile(blur, 99)), 2)],
        "generator_fps": round(len(seq) / render_s, 2),
        "bag": str(bag),
        "bag_storage": storage,
        "bag_round_trip_identical": bool(identical),
        "preview_png": str(png),
        "preview_mp4": str(mp4),
    }, seq


def _ros_environment(domain_id: int | None) -> int:
    """Set the DDS environment of this process (and so of the consumer); returns the domain id."""
    from dfd_depth_ros.nodes.graph import use_dds_profile

    domain = random.SystemRandom().randint(*DOMAIN_RANGE) if domain_id is None else domain_id
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    use_dds_profile()
    return domain


def _run_graph(seq, fps: float, model: Path, backend: str, out: Path, domain_id: int | None,
               timeout_s: float) -> dict:
    """Camera + depth node here, consumer in a child process; returns the graph's part of the summary."""
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.nodes.depth_node import DepthNode
    from dfd_depth_ros.nodes.graph import init_with_params, overrides, remap_args, shutdown, spin_nodes
    from dfd_depth_ros.nodes.params import StartupError
    from dfd_depth_ros.nodes.synthetic_camera import SyntheticCamera
    from dfd_depth_ros.package_paths import config_file

    domain = _ros_environment(domain_id)
    namespace = f"/dfd_demo_{os.getpid()}"
    try:
        init_with_params(config_file("depth.yaml"))
    except StartupError as exc:
        raise CommandError(str(exc)) from None
    consumer = log = None
    try:
        try:
            depth = DepthNode(namespace=namespace, cli_args=remap_args({"image": "image_raw"}),
                              parameter_overrides=overrides(model_path=str(model), backend=backend,
                                                            points_format="xyzrgb"))
            camera = SyntheticCamera(namespace=namespace, sequence=seq, autostart=False, parameter_overrides=overrides(
                fps=float(fps), loop=False, max_frames=len(seq)))
        except StartupError as exc:
            raise CommandError(str(exc)) from None
        backend_name = depth.stream.backend_name
        log = tempfile.TemporaryFile(mode="w+")
        title = (f"{seq.name}: {seq[0].width}x{seq[0].height} at {fps:g} fps, {backend_name} "
                 f"({depth.stream.device}), model {model.name}")
        consumer = subprocess.Popen(
            [sys.executable, "-m", "dfd_depth_ros.nodes.demo_consumer", "--out", str(out), "--namespace", namespace,
             "--timeout-s", str(timeout_s + MATCH_TIMEOUT_S + 60), "--title", title],
            stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        print(f"graph in ROS_DOMAIN_ID {domain}, namespace {namespace}: synthetic camera and depth node "
              f"({backend_name}) here, consumer in process {consumer.pid}", flush=True)
        watch = _GraphWatch(camera, depth, consumer, log, timeout_s)
        t_start = time.monotonic()
        spin_nodes([depth, camera], threads=3, until=watch, linger_s=0.3)
        if not camera.done:
            raise KeyboardInterrupt  # spin_nodes returns on Ctrl-C (rclpy's handler shut the context down)
        graph = _stop_consumer(consumer, log, out)
        consumer = None
        stats = depth.stats
        return {
            "frames_published": camera.published,
            **{k: graph.pop(k, None) for k in ("depth_received", "points_received", "abs_rel", "delta1", "fps",
                                               "latency_ms_p50", "latency_ms_p95")},
            "backend": backend_name,
            "device": depth.stream.device,
            "model": str(model),
            **graph,
            "camera_fps": round(camera.published / max(watch.publish_s, 1e-9), 2),
            "depth_node": {"frames_in": stats.frames_in, "frames_out": stats.frames_out, "dropped": stats.dropped,
                           "skipped": stats.skipped, "state_resets": stats.resets},
            "ros_domain_id": domain,
            "namespace": namespace,
            "graph_s": round(time.monotonic() - t_start, 1),
        }
    finally:
        if consumer is not None:  # error or Ctrl-C: do not leave it behind
            _kill(consumer)
        if log is not None:
            log.close()
        shutdown()


class _GraphWatch:
    """``until`` of the executor loop: start the camera once everyone is matched, end after the last depth."""

    def __init__(self, camera, depth, consumer: subprocess.Popen, log, timeout_s: float):
        self.camera, self.depth, self.consumer, self.log = camera, depth, consumer, log
        self.t0 = time.monotonic()
        self.timeout_s = timeout_s
        self.started_at = self.done_at = None
        self.publish_s = 0.0
        self._last_out = (-1, 0.0)

    def _matched(self) -> bool:
        cam, depth = self.camera, self.depth
        return (cam.image_pub.get_subscription_count() >= 2 and cam.depth_pub.get_subscription_count() >= 1
                and cam.lens_pub.get_subscription_count() >= 1 and cam.info_pub.get_subscription_count() >= 1
                and depth.depth_pub.get_subscription_count() >= 1 and depth.points_pub.get_subscription_count() >= 1)

    def __call__(self) -> bool:
        from dfd_depth_ros.cli import CommandError

        now = time.monotonic()
        if self.consumer.poll() is not None:
            raise CommandError(f"the consumer process exited early (exit {self.consumer.returncode}): "
                               f"{_tail(self.log)}")
        if self.started_at is None:
            if self._matched():
                self.started_at = now
                self.camera.start()
            elif now - self.t0 > MATCH_TIMEOUT_S:
                raise CommandError(f"the consumer did not connect within {MATCH_TIMEOUT_S:g} s (DDS discovery)")
            return False
        if now - self.started_at > self.timeout_s:
            raise CommandError(f"the graph did not finish within --timeout-s {self.timeout_s:g}")
        if not self.camera.done:
            return False
        if self.done_at is None:
            self.done_at = now
            self.publish_s = now - self.started_at
        stats = self.depth.stats
        if stats.frames_out != self._last_out[0]:
            self._last_out = (stats.frames_out, now)
        idle = stats.frames_in == stats.frames_out + stats.skipped and now - self._last_out[1] >= IDLE_S
        return idle or now - self.done_at > DRAIN_MAX_S


def _stop_consumer(consumer: subprocess.Popen, log, out: Path) -> dict:
    """Close the consumer's stdin (its signal to finish), wait for its results and read them."""
    from dfd_depth_ros.cli import CommandError

    consumer.stdin.close()
    try:
        code = consumer.wait(timeout=120)
    except subprocess.TimeoutExpired:
        _kill(consumer)
        raise CommandError("the consumer did not finish writing its results within 120 s") from None
    result = out / "consumer.json"
    if code != 0 or not result.is_file():
        raise CommandError(f"the consumer failed (exit {code}): {_tail(log)}")
    graph = json.loads(result.read_text())
    result.unlink()
    return graph


def _kill(proc: subprocess.Popen) -> None:
    """Stop a child without results: SIGTERM (the consumer then exits at once), SIGKILL after 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdin:
        try:
            proc.stdin.close()
        except OSError:
            pass


def _tail(log, lines: int = 3) -> str:
    log.flush()
    log.seek(0)
    text = [line.strip() for line in log.read().splitlines() if line.strip()]
    return " | ".join(text[-lines:]) or "no output"
