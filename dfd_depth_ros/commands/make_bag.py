"""`dfd-depth make-bag`: render a synthetic sequence and write it as a rosbag2 bag of the evaluation contract."""

from __future__ import annotations

import shutil
from pathlib import Path

from dfd_depth_ros.commands._common import add_sequence_args, sequence_config

_BAG_SUFFIXES = (".mcap", ".db3", ".yaml", ".zstd")


def register(sub) -> None:
    p = sub.add_parser("make-bag", help="write a generated sequence as a rosbag2 bag (image, camera_info, "
                       "lens_state, depth_gt)", description=__doc__)
    p.add_argument("--out", required=True, help="bag folder to create (must not exist or be empty)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="storage plugin (default mcap)")
    p.add_argument("--force", action="store_true", help="replace an existing bag folder at --out")
    add_sequence_args(p)
    p.set_defaults(func=run)


def _clear_out(out: Path, force: bool) -> None:
    """Make ``out`` absent or empty; with ``force`` an existing bag folder (and only that) is deleted."""
    from dfd_depth_ros.cli import CommandError

    if out.exists() and not out.is_dir():
        raise CommandError(f"{out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise CommandError(f"{out} is not empty (use --force to replace the bag in it)")
    if not all(e.is_file() and e.name.endswith(_BAG_SUFFIXES) for e in out.iterdir()):
        raise CommandError(f"{out} holds files that are not a rosbag2 bag; not deleting it, even with --force")
    shutil.rmtree(out)


def _lens_summary(seq) -> str:
    lens = [f.lens for f in seq]
    focus = [x.focus_distance_m for x in lens]
    return (f"f={lens[0].focal_length_m * 1e3:.1f} mm f/{lens[0].f_number:.2g}, "
            f"focus {min(focus):.2f}-{max(focus):.2f} m")


def run(args) -> int:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.evaluation.bagio import BagError, write_sequence_bag
    from dfd_depth_ros.synthetic.sequences import generate_sequence

    cfg = sequence_config(args)
    out = Path(args.out)
    _clear_out(out, args.force)
    seq = generate_sequence(cfg, progress=True)
    try:
        write_sequence_bag(seq, out, storage=args.storage)
    except BagError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {out} ({args.storage}): {len(seq)} frames {cfg.width_px}x{cfg.height_px}, {_lens_summary(seq)}")
    return 0
