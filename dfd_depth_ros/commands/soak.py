"""`dfd-depth soak`: the depth node under a steady camera load for N minutes, measured from outside.

    dfd-depth soak --minutes 8 --rate 30 --width 320 --height 240 --model models/dfd_recurrent.onnx --out out/soak

Starts the depth node in a process of its own (as deployed: ``python -m dfd_depth_ros.nodes.depth_node``
with the shipped parameters file, on a private ROS_DOMAIN_ID, loopback only, the shipped Fast DDS
profile) and, in this process, ``nodes.soak_driver.SoakDriver``: a camera that publishes lens sample,
camera_info and image of every frame at --rate, and a consumer subscribed to depth, confidence and
points. After a warm-up it counts for --minutes and reports: frames sent and with depth (%), depth
latency percentiles (arrival - stamp), the node's resident memory (RSS) growth, the backlog (latency
of the last window minus the first), the node's skips by reason, drops and state resets. Writes
soak.json and soak.png (latency and RSS over time) into --out. Exit 0, or 1 with --check when the
run misses the targets (>= 95 % with depth, no frame skipped for want of a lens sample, no state
reset, RSS growth < 5 MB).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

WARMUP_S = 8.0
TARGETS = {"depth_fraction_min": 0.95, "skipped_no_lens_max": 0, "state_resets_max": 0, "rss_growth_mb_max": 5.0}


def register(sub) -> None:
    p = sub.add_parser("soak", help="run camera + depth node + consumer for N minutes and measure", description=__doc__)
    p.add_argument("--minutes", type=float, required=True, help="counted duration, minutes (after a warm-up)")
    p.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz (default %(default)s)")
    p.add_argument("--width", type=int, default=320, help="image width, px (default %(default)s)")
    p.add_argument("--height", type=int, default=240, help="image height, px (default %(default)s)")
    p.add_argument("--model", help="ONNX model (default: the shipped one)")
    p.add_argument("--backend", default="onnxruntime", help="backend parameter of the node (default %(default)s)")
    p.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter, repeatable (e.g. points_max_rate_hz:=10.0)")
    p.add_argument("--domain", type=int, default=int(os.environ.get("DFD_SOAK_DOMAIN", "131")),
                   help="ROS_DOMAIN_ID of the run (default %(default)s)")
    p.add_argument("--out", default="out/soak", help="folder for soak.json and soak.png (default %(default)s)")
    p.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    p.set_defaults(func=run)


def _node_command(args) -> list[str]:
    from dfd_depth_ros.package_paths import config_file

    cmd = [sys.executable, "-m", "dfd_depth_ros.nodes.depth_node", "--ros-args", "--params-file",
           str(config_file("depth.yaml")), "-p", f"backend:={args.backend}", "-p", "diagnostics_period_s:=1.0"]
    if args.model:
        cmd += ["-p", f"model_path:={Path(args.model).resolve()}"]
    for param in args.param:
        cmd += ["-p", param]
    return cmd


def summarise(sent: dict[int, float], latency_s: dict[int, float], rss: list[tuple[float, float]],
              status: dict[str, str], history: list[dict[str, str]] = (), windows: int = 6) -> dict:
    """The figures of a run: sent frames (stamp -> send time), depth latencies (stamp -> s), RSS samples
    ((time s, MB)), the node's last /diagnostics values and the ones of the counted periods (``history``)."""
    stamps = sorted(sent)
    got = np.array([latency_s[s] for s in stamps if s in latency_s])
    out = {"frames_sent": len(stamps), "frames_with_depth": int(got.size),
           "depth_fraction": round(got.size / max(len(stamps), 1), 4)}
    if got.size:
        out.update({f"latency_ms_p{q}": round(float(np.percentile(got, q)) * 1e3, 1) for q in (50, 95, 99)})
        out["latency_ms_max"] = round(float(got.max()) * 1e3, 1)
        parts = [p for p in np.array_split(np.array([latency_s[s] for s in stamps if s in latency_s]), windows)
                 if p.size]
        out["backlog_ms"] = round((float(np.median(parts[-1])) - float(np.median(parts[0]))) * 1e3, 1)
    if len(rss) >= 4:
        values = np.array([m for _, m in rss])
        k = max(1, len(values) // 10)
        out["rss_mb_start"], out["rss_mb_end"] = round(float(np.median(values[:k])), 1), round(
            float(np.median(values[-k:])), 1)
        out["rss_growth_mb"] = round(out["rss_mb_end"] - out["rss_mb_start"], 2)
    processing = [float(h["processing_ms_mean"]) for h in history if h.get("processing_ms_mean", "n/a") != "n/a"]
    if processing:
        out["node_processing_ms_mean"] = round(float(np.mean(processing)), 2)
    for key in ("skipped_frames", "skipped_no_lens", "skipped_by_reason", "dropped_frames", "state_resets",
                "last_reset_reason", "duplicate_stamps", "lens_latency_ms", "frames_in",
                "frames_out"):
        if key in status:
            out[f"node_{key}"] = status[key]
    return out


def verdict(summary: dict) -> list[str]:
    """The targets a summary misses (empty: all met)."""
    missed = []
    if summary["depth_fraction"] < TARGETS["depth_fraction_min"]:
        missed.append(f"depth for {100 * summary['depth_fraction']:.1f} % of frames (< 95 %)")
    if int(summary.get("node_skipped_no_lens", 0)) > TARGETS["skipped_no_lens_max"]:
        missed.append(f"{summary['node_skipped_no_lens']} frames skipped for want of a lens sample")
    if int(summary.get("node_state_resets", 0)) > TARGETS["state_resets_max"]:
        missed.append(f"{summary['node_state_resets']} state resets (last {summary.get('node_last_reset_reason')})")
    if summary.get("rss_growth_mb", 0.0) >= TARGETS["rss_growth_mb_max"]:
        missed.append(f"RSS grew {summary['rss_growth_mb']} MB (>= 5 MB)")
    return missed


def _plot(path: Path, sent: dict, latency_s: dict, rss: list, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(sent.values()) if sent else 0.0
    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    xs = [sent[s] - t0 for s in sorted(sent) if s in latency_s]
    a.plot(xs, [1e3 * latency_s[s] for s in sorted(sent) if s in latency_s], ".", ms=2)
    lost = [sent[s] - t0 for s in sorted(sent) if s not in latency_s]
    a.plot(lost, [0.0] * len(lost), "|", color="red", label=f"no depth ({len(lost)})")
    a.set_ylabel("depth latency, ms")
    a.legend(loc="upper right")
    a.set_title(title)
    b.plot([t - t0 for t, _ in rss], [m for _, m in rss])
    b.set_ylabel("node RSS, MB")
    b.set_xlabel("time, s")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(args) -> int:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.nodes.graph import use_dds_profile
    from dfd_depth_ros.nodes.soak_driver import SoakError, soak

    if args.minutes <= 0 or args.rate <= 0 or args.width < 8 or args.height < 8:
        raise CommandError("need --minutes > 0, --rate > 0 and an image of at least 8x8 px")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    use_dds_profile()
    print(f"soak: {args.minutes} min at {args.rate} Hz, {args.width}x{args.height}, model "
          f"{args.model or 'shipped'}, domain {args.domain}", flush=True)
    try:
        rec = soak(_node_command(args), args.domain, args.rate, args.width, args.height, WARMUP_S,
                   60.0 * args.minutes, out / "depth_node.log")
    except SoakError as exc:
        raise CommandError(str(exc)) from None
    summary = summarise(rec.sent, rec.latency_s, rec.rss, rec.node_status, rec.node_history)
    if rec.cpu_s is not None and rec.sent:
        summary["node_cpu_ms_per_frame"] = round(1e3 * rec.cpu_s / len(rec.sent), 2)
        summary["node_cpu_fraction_of_one_core"] = round(rec.cpu_s / rec.counted_s, 3)
    summary.update(minutes=args.minutes, rate_hz=args.rate, width=args.width, height=args.height,
                   model=args.model or "shipped", node_params=args.param, confidence_images=rec.confidence_images,
                   point_clouds=rec.point_clouds, missed_targets=verdict(summary))
    (out / "soak.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(out / "soak.png", rec.sent, rec.latency_s, rec.rss, f"{args.width}x{args.height} at {args.rate} Hz, "
          f"{Path(args.model).name if args.model else 'shipped model'}")
    print(json.dumps(summary, indent=2))
    return 1 if args.check and summary["missed_targets"] else 0
