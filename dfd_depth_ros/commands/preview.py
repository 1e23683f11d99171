"""`dfd-depth preview`: render a synthetic sequence and write a PNG strip (and MP4) of RGB, depth and blur."""

from __future__ import annotations

from dfd_depth_ros.commands._common import add_sequence_args, prepare_out_dir, sequence_config


def register(sub) -> None:
    p = sub.add_parser("preview", help="preview a generated sequence: RGB, ground-truth depth and blur across frames",
                       description=__doc__)
    p.add_argument("--out", required=True, help="output folder (preview.png, preview.mp4)")
    p.add_argument("--columns", type=int, default=8, help="frames shown in the PNG strip (default 8)")
    p.add_argument("--no-mp4", action="store_true", help="skip the MP4")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    add_sequence_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from dfd_depth_ros.synthetic.sequences import generate_sequence
    from dfd_depth_ros.viz import sequence_preview_mp4, sequence_preview_png

    cfg = sequence_config(args)
    out = prepare_out_dir(args.out, args.force)
    seq = generate_sequence(cfg, progress=True)
    png = sequence_preview_png(seq, out / "preview.png", columns=args.columns, max_blur_px=cfg.max_blur_px)
    print(f"wrote {png}")
    if not args.no_mp4:
        print(f"wrote {sequence_preview_mp4(seq, out / 'preview.mp4', fps=cfg.fps, max_blur_px=cfg.max_blur_px)}")
    return 0
