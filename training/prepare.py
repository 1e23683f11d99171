"""Render the clip cache of a training config ahead of training (optionally split across processes).

    python -m training.prepare --config training/configs/dfd_recurrent.yaml [--shards 0,1,2] [--cache data/cache]

Training renders what is missing itself; this only lets several processes share the work.
"""

from __future__ import annotations

import argparse

from training.data import build_cache
from training.train import TrainConfig


def main(argv=None) -> int:
    """Render the cache of a training config ahead of training; --shards splits the work across processes."""
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--config", required=True, help="training YAML whose data section to render")
    ap.add_argument("--cache", default="data/cache", help="cache root folder")
    ap.add_argument("--shards", help="comma-separated shard indices to render (default: all)")
    args = ap.parse_args(argv)
    cfg = TrainConfig.from_yaml(args.config).data
    only = None if args.shards is None else {int(x) for x in args.shards.split(",")}
    print(build_cache(cfg, args.cache, only_shards=only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
