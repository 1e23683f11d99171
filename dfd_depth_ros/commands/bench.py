"""`dfd-depth bench`: time the estimator's real code path per frame, stage by stage.

Each frame goes the way the ROS node takes it: an rgb8 Image buffer is decoded
(image_codec), DepthStream.process runs preprocessing, inference and postprocessing with the
temporal state carried over, and the depth becomes an organized point cloud packed as
PointCloud2 fields (x, y, z, rgb). Reports p50/p95 per frame and the p50 of every stage:
    convert      message bytes -> RGB array (decode_image, to_rgb8, input checks)
    preprocess   resize/pad, uint8 -> float32 NCHW, lens input
    inference    the backend's infer() call
    postprocess  crop/resize back, range and confidence masks
    pointcloud   depth_to_points + pointcloud2_fields
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

STAGE_NAMES = ("convert", "preprocess", "inference", "postprocess", "pointcloud")


def register(sub) -> None:
    p = sub.add_parser("bench", help="time decode, preprocessing, inference, postprocessing and point cloud per frame",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=320, help="image width, px (default %(default)s)")
    p.add_argument("--height", type=int, default=240, help="image height, px (default %(default)s)")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch", "tensorrt"),
                   help="inference backend (default %(default)s)")
    p.add_argument("--frames", type=int, default=50, help="timed frames (default %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first (default %(default)s)")
    p.add_argument("--model", help="model file (default: the shipped models/dfd_recurrent.onnx)")
    p.add_argument("--untrained", action="store_true",
                   help="benchmark a freshly initialised model of the default architecture (no trained model needed)")
    p.add_argument("--device", help="torch/TensorRT device: cpu, cuda, cuda:N (default: the backend's choice)")
    p.add_argument("--threads", type=int, help="CPU intra-op threads (default: the library's choice)")
    p.add_argument("--network-width", type=int, help="run the network at this width, px (with --network-height)")
    p.add_argument("--network-height", type=int, help="run the network at this height, px (with --network-width)")
    p.add_argument("--decimation", type=int, default=1, help="point cloud decimation (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from dfd_depth_ros.cli import CommandError

    if args.frames < 1 or args.warmup < 0 or args.width < 1 or args.height < 1:
        raise CommandError("--frames, --width and --height must be >= 1 and --warmup >= 0")
    with tempfile.TemporaryDirectory(prefix="dfd_bench_") as tmp:
        model = _model_path(args, Path(tmp))
        stream = _open_stream(args, model)
        report = benchmark(stream, args.width, args.height, args.frames, args.warmup, args.decimation)
    report.update(threads=args.threads, untrained=bool(args.untrained))
    if args.untrained:
        report["model"] = "untrained DfDNet (default ModelConfig, random weights)"
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _model_path(args, tmp: Path) -> Path | None:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.package_paths import default_model_path

    if args.untrained:
        if args.model:
            raise CommandError("give --model or --untrained, not both")
        try:
            from dfd_depth_ros.network import DfDNet
            from dfd_depth_ros.onnx_export import export_onnx
        except ImportError as exc:
            raise CommandError(f"--untrained needs torch and onnx: {exc}") from None
        return export_onnx(DfDNet(), tmp / "untrained.onnx")
    if args.model is None and not default_model_path().is_file():
        raise CommandError(f"no model at {default_model_path()}: pass --model, or --untrained to time the architecture")
    return None if args.model is None else Path(args.model)


def _open_stream(args, model: Path | None):
    from dfd_depth_ros.backends import BackendUnavailable, ModelLoadError
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.depth_stream import DepthStream

    options = {"device": args.device, "threads": args.threads}
    try:
        return DepthStream(model, backend=args.backend, network_width=args.network_width,
                           network_height=args.network_height, backend_options=options)
    except (BackendUnavailable, ModelLoadError, ValueError) as exc:
        raise CommandError(str(exc)) from None


def synthetic_frames(width: int, height: int, count: int = 4, seed: int = 0) -> list[dict]:
    """``count`` rgb8 Image field dicts of textured noise, width x height px."""
    import cv2

    from dfd_depth_ros.msgs.image import array_to_image_fields

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = cv2.GaussianBlur(noise, (0, 0), 1.5)
        frames.append(array_to_image_fields(image, "rgb8"))
    return frames


def benchmark(stream, width: int, height: int, frames: int, warmup: int = 3, decimation: int = 1) -> dict:
    """Run ``warmup + frames`` frames through ``stream``; returns the timing report (ms)."""
    from dfd_depth_ros.frames import intrinsics_matrix
    from dfd_depth_ros.optics import LensState

    messages = synthetic_frames(width, height)
    K = intrinsics_matrix(0.9 * width, 0.9 * width, width / 2, height / 2)
    totals, stages = [], {name: [] for name in STAGE_NAMES}
    for i in range(warmup + frames):
        lens = LensState(0.4 + 0.05 * (i % 20), 2.0, 8e-3)  # a focus sweep
        total, split = _one_frame(stream, messages[i % len(messages)], K, lens, int(i * 33_333_333), decimation)
        if i >= warmup:
            totals.append(total)
            for name in STAGE_NAMES:
                stages[name].append(split[name])
    return {
        **stream.backend.describe(),
        "width": width,
        "height": height,
        "network_size": None if stream.network_size is None else list(stream.network_size[::-1]),
        "frames": frames,
        "ms_per_frame_p50": round(float(np.percentile(totals, 50)), 3),
        "ms_per_frame_p95": round(float(np.percentile(totals, 95)), 3),
        "stages_ms_p50": {name: round(float(np.percentile(v, 50)), 3) for name, v in stages.items()},
    }


def _one_frame(stream, msg: dict, K, lens, stamp_ns: int, decimation: int) -> tuple[float, dict]:
    """One frame, message bytes to packed cloud -> (total ms, {stage: ms})."""
    from dfd_depth_ros.msgs.image import decode_image, to_rgb8
    from dfd_depth_ros.pointcloud import depth_to_points, pointcloud2_fields

    t0 = time.perf_counter()
    rgb = to_rgb8(decode_image(msg["height"], msg["width"], msg["encoding"], msg["step"], msg["is_bigendian"],
                               msg["data"]), msg["encoding"])
    t1 = time.perf_counter()
    result = stream.process(rgb, K, lens, stamp_ns, "camera_optical_frame")
    t2 = time.perf_counter()
    xyz = depth_to_points(result.depth_m, K, decimation=decimation)
    pointcloud2_fields(xyz, rgb[::decimation, ::decimation])
    t3 = time.perf_counter()
    split = dict(result.timings_ms)
    split["convert"] += 1e3 * (t1 - t0)
    split["pointcloud"] = 1e3 * (t3 - t2)
    return 1e3 * (t3 - t0), split


def format_report(r: dict) -> str:
    """The report as a few human-readable lines."""
    stages = "  ".join(f"{k} {v:.2f}" for k, v in r["stages_ms_p50"].items())
    return (f"{r['backend']} on {r['device']}, {r['width']}x{r['height']}, {r['frames']} frames, model {r['model']}\n"
            f"ms/frame p50 {r['ms_per_frame_p50']:.2f}  p95 {r['ms_per_frame_p95']:.2f}\n"
            f"stage p50 (ms): {stages}")
