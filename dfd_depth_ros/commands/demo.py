"""`dfd-depth demo`: the README's main job.

Renders a built-in focus-sweep sequence, writes it as an evaluation bag (the contract in
shared/specs/bag-contract.md), reads the bag back to check it, and writes a preview strip,
a preview video and DIR/summary.json.
"""

from __future__ import annotations

import json
import time

import numpy as np

from ._common import add_sequence_args, prepare_out_dir, sequence_config


def register(sub) -> None:
    p = sub.add_parser("demo", help="render a built-in focus-sweep sequence, write it as a bag and a preview",
                       description=__doc__)
    p.add_argument("--out", default="out/demo", help="output folder (default %(default)s)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage (default mcap)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    add_sequence_args(p, frames=45)
    p.set_defaults(func=run, force=True)


def run(args) -> int:
    from training.sequences import generate_sequence

    from ..bagio import read_sequence_bag, write_sequence_bag
    from ..viz import sequence_preview_mp4, sequence_preview_png

    cfg = sequence_config(args)
    out = prepare_out_dir(args.out, args.force)
    t0 = time.perf_counter()
    seq = generate_sequence(cfg, progress=True)
    render_s = time.perf_counter() - t0
    bag = out / "bag"
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    write_sequence_bag(seq, bag, storage=args.storage)
    back = read_sequence_bag(bag)
    identical = len(back) == len(seq) and all(
        np.array_equal(a.image, b.image) and np.array_equal(a.depth_m, b.depth_m, equal_nan=True)
        for a, b in zip(seq, back))
    png = sequence_preview_png(seq, out / "preview.png", max_blur_px=cfg.max_blur_px)
    mp4 = sequence_preview_mp4(seq, out / "preview.mp4", fps=cfg.fps, max_blur_px=cfg.max_blur_px)
    blur = np.stack([f.blur_diameter_px() for f in seq])
    lens = seq[0].lens
    summary = {
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
        "bag_storage": args.storage,
        "bag_round_trip_identical": bool(identical),
        "preview_png": str(png),
        "preview_mp4": str(mp4),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if identical else 1
