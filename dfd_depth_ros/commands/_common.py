"""Options shared by the commands that generate a synthetic sequence (make-bag, preview, demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dfd_depth_ros.synthetic import MOTIONS, SCHEDULES


def add_sequence_args(parser: argparse.ArgumentParser, frames: int = 30, width: int = 320, height: int = 240,
                      schedule: str = "sweep", focal_length_mm: float | None = None, f_number: float | None = None,
                      hfov_deg: float | None = None) -> None:  # fmt: skip
    """Add the scene, schedule, lens, size and length options of a generated sequence (lens defaults: drawn)."""
    g = parser.add_argument_group("synthetic sequence")
    g.add_argument("--width", type=int, default=width, help="image width, px (default %(default)s)")
    g.add_argument("--height", type=int, default=height, help="image height, px (default %(default)s)")
    g.add_argument("--frames", type=int, default=frames, help="number of frames (default %(default)s)")
    g.add_argument("--fps", type=float, default=30.0, help="frame rate of the stamps (default %(default)s)")
    g.add_argument("--schedule", choices=SCHEDULES, default=schedule, help="focus schedule (default %(default)s)")
    g.add_argument("--motion", choices=MOTIONS, default="smooth", help="camera motion (default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="seeds scene, motion, lens draw and noise (default 0)")
    drawn = lambda value, what: f"default {value:g}" if value is not None else f"default: drawn{what}"  # noqa: E731
    g.add_argument("--focal-length-mm", type=float, default=focal_length_mm,
                   help=f"fix the focal length, mm ({drawn(focal_length_mm, ', 4-50')})")
    g.add_argument("--f-number", type=float, default=f_number, help=f"fix the f-number ({drawn(f_number, ', 1.2-8')})")
    g.add_argument("--hfov-deg", type=float, default=hfov_deg,
                   help=f"fix the horizontal field of view, degrees ({drawn(hfov_deg, '')})")
    g.add_argument("--max-blur-px", type=float, default=25.0, help="largest blur a lens draw may give (default 25)")
    g.add_argument("--no-noise", action="store_true", help="render without sensor noise")


def sequence_config(args: argparse.Namespace):
    """Build a dfd_depth_ros.synthetic.sequences.SequenceConfig from the options of add_sequence_args."""
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.synthetic.sequences import SequenceConfig

    try:
        return SequenceConfig(
            width_px=args.width, height_px=args.height, num_frames=args.frames, fps=args.fps,
            schedule=args.schedule, motion=args.motion, seed=args.seed,
            focal_length_m=None if args.focal_length_mm is None else args.focal_length_mm * 1e-3,
            f_number=args.f_number, hfov_deg=args.hfov_deg, max_blur_px=args.max_blur_px, noise=not args.no_noise,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def prepare_out_dir(path: str | Path, force: bool = False) -> Path:
    """Create the output folder; refuse a non-empty one unless ``force``."""
    from dfd_depth_ros.cli import CommandError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise CommandError(f"{out} is not empty (use --force to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    return out
