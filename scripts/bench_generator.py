#!/usr/bin/env python3
"""Measure the sequence generator's throughput (frames/s) per image size and stage; prints a table and JSON.

Usage: .venv/bin/python scripts/bench_generator.py [--frames 16] [--seeds 2] [--sizes 320x240 160x128]
Sizes are WIDTHxHEIGHT. Stages: plan (scene, motion, probe, schedule, lens), ray casting (all-in-focus
colour + depth), defocus (dfd_depth_ros.synthetic.render.render_defocus) and sensor (noise, gamma, uint8). The machine's
load average is printed too: other processes on a shared machine slow every number down.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dfd_depth_ros.synthetic import sequences as sq  # noqa: E402
from dfd_depth_ros.synthetic.raycast import render_views  # noqa: E402
from dfd_depth_ros.synthetic.render import render_defocus  # noqa: E402
from dfd_depth_ros.synthetic.textures import texture_bank  # noqa: E402


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench_size(width_px: int, height_px: int, frames: int, seeds: int) -> dict:
    """Stage times (s per frame) and end-to-end frames/s of render_clip at one size, averaged over seeds."""
    stages = {"plan": 0.0, "raycast": 0.0, "defocus": 0.0, "sensor": 0.0}
    total = 0.0
    for seed in range(seeds):
        cfg = sq.SequenceConfig(width_px=width_px, height_px=height_px, num_frames=frames, seed=seed)
        plan, dt = _timed(sq.plan_clip, cfg)
        stages["plan"] += dt
        for start in range(0, frames, sq.RENDER_BATCH_FRAMES):
            idx = range(start, min(start + sq.RENDER_BATCH_FRAMES, frames))
            (aif, depth), dt = _timed(render_views, plan.scene, plan.poses[idx.start : idx.stop], plan.K,
                                      width_px, height_px, sq.SUPERSAMPLE)  # fmt: skip
            stages["raycast"] += dt
            focus = torch.tensor(plan.focus_m[idx.start : idx.stop], dtype=torch.float32)
            blurred, dt = _timed(render_defocus, aif, depth, torch.full((len(idx),), plan.lens.blur_scale_pxm), focus)
            stages["defocus"] += dt
            _, dt = _timed(sq._sensor_u8, blurred, plan, idx, 0)
            stages["sensor"] += dt
        _, dt = _timed(sq.render_clip, cfg)
        total += dt
    n = frames * seeds
    return {
        "size": f"{width_px}x{height_px}",
        "frames_per_s": round(n / total, 2),
        "ms_per_frame": {k: round(1e3 * v / n, 1) for k, v in stages.items()},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16, help="frames per sequence")
    ap.add_argument("--seeds", type=int, default=2, help="sequences per size")
    ap.add_argument("--sizes", nargs="+", default=["320x240", "160x128"], help="WIDTHxHEIGHT")
    args = ap.parse_args(argv)
    _, bank_s = _timed(texture_bank)
    results = [bench_size(*map(int, s.split("x")), args.frames, args.seeds) for s in args.sizes]
    print(f"{'size':>9} {'frames/s':>9} " + " ".join(f"{k + ' ms':>11}" for k in results[0]["ms_per_frame"]))
    for r in results:
        stage_ms = " ".join(f"{v:>11.1f}" for v in r["ms_per_frame"].values())
        print(f"{r['size']:>9} {r['frames_per_s']:>9.2f} {stage_ms}")
    report = {
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "texture_bank_s": round(bank_s, 2),
        "frames": args.frames,
        "seeds": args.seeds,
        "results": results,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
