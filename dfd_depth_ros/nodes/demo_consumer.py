"""demo_consumer: the subscriber side of `dfd-depth demo`, run in its own process.

    python -m dfd_depth_ros.nodes.demo_consumer --out DIR --namespace NS [--timeout-s 120] [--title TEXT]

Subscribes to NS/depth, NS/points, NS/depth_gt and NS/image_raw (over DDS, as any other
process would), pairs each depth image with the ground truth of the same header stamp, and
measures what a user of the node sees:

    latency  receive time (wall clock) - header stamp (the synthetic camera stamps with the wall clock)
    fps      depth images received per second, first to last
    metrics  abs_rel, delta1, ... of ``metrics.MetricAccumulator`` over the matched frames

It runs until its stdin closes (the demo closes it when the graph is done; if the demo dies,
the pipe closes too) or ``--timeout-s`` has passed, then writes DIR/consumer.json,
DIR/depth_strip.png (RGB | ground truth | predicted depth | error for a few frames) and
DIR/points.ply (the last point cloud, binary PLY with xyz and rgb, NaN points dropped).
SIGINT or SIGTERM stop it without writing anything (exit 130 / 143).
The pairing, PLY and strip code is ROS-free (``DemoRecorder``, ``cloud_arrays``, ``write_ply``,
``depth_strip_png``).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from dfd_depth_ros.metrics import MetricAccumulator, log_error
from dfd_depth_ros.stamp_pairing import StampPairer

KEEP_UNMATCHED = 64  # stamps whose depth or ground truth waits for its partner
KEEP_MATCHED = 120  # matched frames kept for the strip (thinned to every other one beyond this)
ERROR_RANGE = math.log(2.0)  # the strip's error colours span ln(pred / gt) in [-ln 2, ln 2]


# ----------------------------------------------------------------------------- ROS-free pieces


class DemoRecorder:
    """Pairs depth with ground truth (and the RGB image, when it came) by stamp; accumulates metrics,
    latencies and the frames to show.

    Feed it from the subscription callbacks (one thread); ``summary()`` at the end.
    """

    def __init__(self) -> None:
        self.metrics = MetricAccumulator()
        self.latency_ms: list[float] = []
        self.receive_ns: list[int] = []
        self.counts = {"depth": 0, "points": 0, "depth_gt": 0, "image": 0}
        self.matched: list[dict] = []  # {"stamp_ns", "rgb", "gt", "pred", "abs_rel"}
        self.n_matched = 0
        self._pairer = StampPairer(("depth", "depth_gt", "image"), complete_with=("depth", "depth_gt"),
                                   window=KEEP_UNMATCHED)

    def on_depth(self, stamp_ns: int, depth_m: np.ndarray, receive_ns: int) -> None:
        """(H, W) float32 depth with its header stamp and wall-clock receive time, ns."""
        self.counts["depth"] += 1
        self.latency_ms.append((receive_ns - stamp_ns) * 1e-6)
        self.receive_ns.append(receive_ns)
        self._add("depth", stamp_ns, depth_m)

    def on_depth_gt(self, stamp_ns: int, gt_m: np.ndarray) -> None:
        self.counts["depth_gt"] += 1
        self._add("depth_gt", stamp_ns, gt_m)

    def on_image(self, stamp_ns: int, rgb: np.ndarray) -> None:
        self.counts["image"] += 1
        self._add("image", stamp_ns, rgb)

    def _add(self, stream: str, stamp_ns: int, item: np.ndarray) -> None:
        self._pairer.add(stream, stamp_ns, item)
        entry = self._pairer.take(stamp_ns)
        if entry is not None:
            self._match(stamp_ns, entry["depth"], entry["depth_gt"], entry.get("image"))
        self._pairer.evict()

    def on_points(self) -> None:
        self.counts["points"] += 1

    def _match(self, stamp_ns: int, pred: np.ndarray, gt: np.ndarray, rgb: np.ndarray | None) -> None:
        if pred.shape != gt.shape:
            return  # not the same image; cannot be scored
        m = self.metrics.add(pred, gt)
        self.n_matched += 1
        self.matched.append({"stamp_ns": stamp_ns, "rgb": rgb, "gt": gt, "pred": pred,
                             "abs_rel": m["abs_rel"]})
        if len(self.matched) > KEEP_MATCHED:
            self.matched = self.matched[::2]

    def fps(self) -> float:
        """Depth images received per second, first to last receive (NaN with fewer than two)."""
        if len(self.receive_ns) < 2 or self.receive_ns[-1] <= self.receive_ns[0]:
            return float("nan")
        return (len(self.receive_ns) - 1) / ((self.receive_ns[-1] - self.receive_ns[0]) * 1e-9)

    def strip_frames(self, n: int = 4) -> list[dict]:
        """Up to ``n`` matched frames spread evenly over the run."""
        if not self.matched:
            return []
        idx = sorted(set(np.linspace(0, len(self.matched) - 1, min(n, len(self.matched))).round().astype(int)))
        return [self.matched[i] for i in idx]

    def summary(self) -> dict:
        """Counts, metrics, fps and latency percentiles (non-finite values as None)."""
        m = self.metrics.summary()
        lat = np.asarray(self.latency_ms)
        out = {
            "depth_received": self.counts["depth"],
            "points_received": self.counts["points"],
            "depth_gt_received": self.counts["depth_gt"],
            "images_received": self.counts["image"],
            "frames_matched": self.n_matched,
            "abs_rel": m["abs_rel"],
            "delta1": m["delta1"],
            "rmse": m["rmse"],
            "missing": m["missing"],
            "fps": self.fps(),
            "latency_ms_p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
            "latency_ms_p95": float(np.percentile(lat, 95)) if lat.size else float("nan"),
            "latency_ms_max": float(lat.max()) if lat.size else float("nan"),
        }
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else
                    round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def cloud_arrays(msg) -> tuple[np.ndarray, np.ndarray | None]:
    """PointCloud2 with float32 x, y, z (+ packed "rgb") -> ((N, 3) float32 finite points, (N, 3) uint8 RGB or None).

    Works on any object with the message's fields; padded rows (row_step > width * point_step)
    are fine. ValueError for a big-endian cloud or missing x/y/z.
    """
    offsets = {f.name: int(f.offset) for f in msg.fields}
    if msg.is_bigendian or not {"x", "y", "z"} <= offsets.keys():
        raise ValueError("need a little-endian cloud with float32 x, y, z fields")
    h, w, step = int(msg.height), int(msg.width), int(msg.point_step)
    raw = np.frombuffer(msg.data, np.uint8)[: h * int(msg.row_step)].reshape(h, int(msg.row_step))
    points = raw[:, : w * step].reshape(h * w, step)

    def column(name: str, dtype: str) -> np.ndarray:
        return np.ascontiguousarray(points[:, offsets[name]: offsets[name] + 4]).view(dtype)[:, 0]

    xyz = np.stack([column(c, "<f4") for c in "xyz"], axis=1)
    keep = np.isfinite(xyz).all(axis=1)
    rgb = None
    if "rgb" in offsets:
        packed = column("rgb", "<u4")[keep]
        rgb = np.stack([(packed >> s) & 0xFF for s in (16, 8, 0)], axis=1).astype(np.uint8)
    return xyz[keep], rgb


def write_ply(path: str | Path, xyz: np.ndarray, rgb: np.ndarray | None = None) -> Path:
    """Write (N, 3) points [+ (N, 3) uint8 colours] as a binary little-endian PLY; returns the path."""
    xyz = np.asarray(xyz, dtype="<f4").reshape(-1, 3)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    props = ["property float x", "property float y", "property float z"]
    if rgb is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        props += ["property uchar red", "property uchar green", "property uchar blue"]
    vertices = np.empty(len(xyz), dtype=fields)
    for i, c in enumerate("xyz"):
        vertices[c] = xyz[:, i]
    if rgb is not None:
        for i, c in enumerate(("red", "green", "blue")):
            vertices[c] = rgb[:, i]
    header = "\n".join(["ply", "format binary_little_endian 1.0", "comment dfd_depth_ros demo point cloud (metres,"
                        " camera optical frame)", f"element vertex {len(xyz)}", *props, "end_header"]) + "\n"
    path = Path(path)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertices.tobytes())
    return path


def depth_strip_png(frames: list[dict], path: str | Path, title: str = "", min_depth_m: float = 0.3,
                    max_depth_m: float = 10.0) -> Path:
    """One row per frame: RGB | ground truth | predicted depth | ln(pred / gt); labelled, with colour bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, Normalize

    from dfd_depth_ros.viz import colorize_depth

    if not frames:
        raise ValueError("no matched frames to draw")
    t0 = frames[0]["stamp_ns"]
    h, w = frames[0]["gt"].shape
    fig, axes = plt.subplots(len(frames), 4, figsize=(4 * 2.6, len(frames) * 2.6 * h / w + 1.6),
                             squeeze=False, constrained_layout=True)
    error_cmap = plt.get_cmap("RdBu_r").copy()
    error_cmap.set_bad((40 / 255,) * 3)
    for row, f in zip(axes, frames):
        rgb = f["rgb"] if f["rgb"] is not None else np.full((h, w, 3), 40, np.uint8)
        row[0].imshow(rgb)
        row[1].imshow(colorize_depth(f["gt"], min_depth_m, max_depth_m))
        row[2].imshow(colorize_depth(f["pred"], min_depth_m, max_depth_m))
        row[3].imshow(log_error(f["pred"], f["gt"]), cmap=error_cmap, vmin=-ERROR_RANGE, vmax=ERROR_RANGE)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        abs_rel = f["abs_rel"]
        row[0].set_ylabel(f"t = {(f['stamp_ns'] - t0) * 1e-9:+.1f} s", fontsize=9)
        row[3].set_ylabel(f"abs_rel {abs_rel:.3f}" if math.isfinite(abs_rel) else "no valid pixel", fontsize=9)
        row[3].yaxis.set_label_position("right")
    for ax, name in zip(axes[0], ("RGB", "ground truth", "predicted depth", "error ln(pred / gt)")):
        ax.set_title(name, fontsize=10)
    fig.colorbar(plt.cm.ScalarMappable(LogNorm(min_depth_m, max_depth_m), plt.get_cmap("turbo_r")),
                 ax=axes[:, 1:3], location="bottom", shrink=0.8, label="z [m] (grey: invalid)")
    fig.colorbar(plt.cm.ScalarMappable(Normalize(-ERROR_RANGE, ERROR_RANGE), error_cmap), ax=axes[:, 3],
                 location="bottom", label="ln(pred / gt); ±0.69 = a factor 2")
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- the process


def _subscribe(node, namespace: str, recorder: DemoRecorder):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image, PointCloud2

    from dfd_depth_ros.msgs.convert import image_to_rgb, stamp_to_ns
    from dfd_depth_ros.msgs.image import image_to_array

    latest_cloud: list = [None]
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

    def on_depth(msg) -> None:
        now_ns = time.time_ns()  # first: the latency ends when the message reaches us
        recorder.on_depth(stamp_to_ns(msg.header.stamp), image_to_array(msg, copy=True), now_ns)

    def on_points(msg) -> None:
        recorder.on_points()
        latest_cloud[0] = msg

    subs = [
        node.create_subscription(Image, f"{namespace}/depth/image", on_depth, qos),
        node.create_subscription(PointCloud2, f"{namespace}/points", on_points, qos),
        node.create_subscription(Image, f"{namespace}/depth_gt", lambda m: recorder.on_depth_gt(
            stamp_to_ns(m.header.stamp), image_to_array(m, copy=True)), qos),
        node.create_subscription(Image, f"{namespace}/image_raw", lambda m: recorder.on_image(
            stamp_to_ns(m.header.stamp), np.array(image_to_rgb(m))), qos),
    ]
    return subs, latest_cloud


def _stop_on_stdin_eof(stop: threading.Event) -> None:
    def watch() -> None:
        try:
            while sys.stdin.buffer.read(1024):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    threading.Thread(target=watch, daemon=True).start()


def write_results(out: Path, recorder: DemoRecorder, cloud, title: str) -> dict:
    """consumer.json (+ depth_strip.png and points.ply when there is something to draw); returns the summary."""
    summary = recorder.summary()
    frames = recorder.strip_frames()
    if frames:
        summary["depth_strip_png"] = str(depth_strip_png(frames, out / "depth_strip.png", title=title))
    if cloud is not None:
        xyz, rgb = cloud_arrays(cloud)
        summary["points_ply"] = str(write_ply(out / "points.ply", xyz, rgb))
        summary["ply_points"] = len(xyz)
    (out / "consumer.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dfd_depth_ros.nodes.demo_consumer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--namespace", required=True, help="namespace of the camera and depth topics, e.g. /camera")
    ap.add_argument("--timeout-s", type=float, default=300.0, help="stop after this long at the latest")
    ap.add_argument("--title", default="", help="title of the depth strip")
    args = ap.parse_args(argv)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    aborted: list[int] = []

    def on_sigterm(*_) -> None:
        aborted.append(143)
        stop.set()

    signal.signal(signal.SIGTERM, on_sigterm)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("dfd_demo_consumer")
    recorder = DemoRecorder()
    _, latest_cloud = _subscribe(node, args.namespace.rstrip("/"), recorder)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    _stop_on_stdin_eof(stop)
    print("ready", flush=True)
    deadline = time.monotonic() + args.timeout_s
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    except KeyboardInterrupt:
        aborted.append(130)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    if aborted:
        return aborted[0]
    summary = write_results(out, recorder, latest_cloud[0], args.title)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
