"""Render the benchmark's evaluation bags (what is missing), keep their manifest.

    python -m benchmark.build --out data/benchmark [--only NAME ...] [--spp N] [--tiny]
                              [--variant V] [--plan-only] [--list] [--keep-frames]
    python -m benchmark.build --set dev --out data/benchmark_dev     # the model-selection set

``--set dev`` renders ``benchmark.sequences.DEV_SEQUENCES`` instead (the 12 sequences with 8-25 px lenses, re-seeded:
new scene content, the same kinds of sequence), with its own manifest ``benchmark/manifest_dev.json``: choose between
trained models there and report on the test set, which then stays blind.

For each sequence of ``benchmark.sequences.SEQUENCES`` (or the ``--only`` ones):
  * up to date (skipped): ``OUT/<name>`` exists, the manifest has a render of the same spec
    (``spec_hash``) at the same spp, and the bag's content hash matches the recorded one;
  * otherwise it is rendered (``benchmark.generate``; finished frames are cached under
    ``OUT/.frames/`` so an interrupted sequence resumes), written to ``OUT/.tmp/<name>`` with
    ``dfd_depth_ros.evaluation.bagio.write_sequence_bag`` (the spec's storage and image
    encoding) and renamed to ``OUT/<name>`` when complete.
The content hash (``bag_content_sha256``) is a sha256 over the *decoded* image and depth
arrays in stamp order (pixel rows without padding, encoding, size, stamp), so it does not
depend on the storage plugin or on how the writer pads rows.

Manifest: ``benchmark/manifest.json`` (commit it) for the full set at the default spp; a
``--tiny`` or non-default ``--spp`` run keeps its own ``OUT/manifest.json``. It lists every
sequence's parameters (spec, lens, depth and focus ranges, max blur) and, once rendered, the
content hash, the Mitsuba variant and the render time.

``--tiny``: 64x48 px, 3 frames, 4 spp (for tests; default out data/benchmark-tiny).
Measured on this project's 2-core machine (scalar_rgb, 64 spp, path depth 3; the llvm variant
needs libLLVM >= 19, which the machine lacks): with both cores free 1.9 s per 288x216 frame,
3.2-3.3 s per 320x240 or corridor frame, so the 14 sequences / 442 frames take about 20 minutes;
at nice 10 beside other jobs (load average 7) 5.3 s (288x216) and 8.9 s (320x240), about 50 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmark import sequences as sequences_mod
from benchmark.sequences import DEV_SEQUENCES, SEQUENCES, SETS, SequenceSpec

__all__ = ["DEFAULT_SPP", "MANIFEST_PATH", "bag_content_sha256", "build", "load_manifest", "table", "main"]

DEFAULT_SPP = 64
TINY_SPP = 4
MANIFEST_PATH = Path(__file__).resolve().parent / "manifest.json"
DEV_MANIFEST_PATH = Path(__file__).resolve().parent / "manifest_dev.json"
IMAGE_TOPIC, DEPTH_TOPIC = "/camera/image_raw", "/camera/depth_gt"
_CHANNELS = {"rgb8": 3, "bgr8": 3, "mono8": 1, "32FC1": 4}


def bag_content_sha256(path: Path) -> str:
    """sha256 of the decoded image and depth arrays of a bag, in stamp order (storage-independent)."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_KILTED)
    items = []
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.topic in (IMAGE_TOPIC, DEPTH_TOPIC)]
        for conn, _, raw in reader.messages(connections=conns):
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            row_bytes = int(msg.width) * _CHANNELS[msg.encoding]
            rows = np.frombuffer(bytes(msg.data), np.uint8).reshape(int(msg.height), int(msg.step))[:, :row_bytes]
            if msg.encoding == "32FC1":
                d = np.ascontiguousarray(rows).view(">f4" if msg.is_bigendian else "<f4").astype("<f4")
                rows = np.where(np.isnan(d), np.float32(np.nan), d).astype("<f4").view(np.uint8)
            head = f"{stamp} {conn.topic} {msg.encoding} {msg.height}x{msg.width}".encode()
            items.append((stamp, conn.topic, head, np.ascontiguousarray(rows).tobytes()))
    h = hashlib.sha256()
    for _, _, head, data in sorted(items, key=lambda it: (it[0], it[1])):
        h.update(head)
        h.update(data)
    return h.hexdigest()


def load_manifest(path: Path) -> dict:
    """The manifest at ``path`` (a fresh one if it does not exist)."""
    if path.is_file():
        return json.loads(path.read_text())
    return {"about": "Path-traced (Mitsuba 3 thinlens) evaluation bags of dfd_depth_ros; "
                     "rendered with python -m benchmark.build. Nothing trains on them.",
            "version": 1, "sequences": {}}


def _save_manifest(manifest: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _entry(manifest: dict, spec: SequenceSpec) -> dict:
    """The manifest entry of ``spec``, refreshed with its parameters (a changed spec drops the old render)."""
    old = manifest["sequences"].get(spec.name, {})
    entry = {"spec_hash": spec.spec_hash(), "schedule": spec.schedule, "motion": spec.motion,
             "lens_regime": spec.lens_regime, "low_light": spec.low_light, "encoding": spec.encoding,
             "storage": spec.storage, "size_px": [spec.width_px, spec.height_px], "frames": spec.frames,
             "fov_x_deg": round(spec.fov_deg, 4), "spec": spec.as_dict()}
    if old.get("spec_hash") == entry["spec_hash"]:
        for key in ("plan", "rendered"):
            if key in old:
                entry[key] = old[key]
    manifest["sequences"][spec.name] = entry
    return entry


def _up_to_date(bag: Path, entry: dict, spp: int) -> bool:
    rendered = entry.get("rendered")
    if not (bag.is_dir() and rendered and rendered.get("spp") == spp):
        return False
    try:
        return bag_content_sha256(bag) == rendered.get("content_sha256")
    except Exception as exc:  # unreadable bag: render it again
        print(f"{bag.name}: cannot read the existing bag ({exc}); rendering it again", flush=True)
        return False


def _render_one(spec: SequenceSpec, out: Path, spp: int, variant: str, keep_frames: bool, progress: bool) -> dict:
    from benchmark.generate import render_sequence
    from dfd_depth_ros.evaluation.bagio import write_sequence_bag

    cache = out / ".frames" / f"{spec.name}-{spec.spec_hash()}-{spp}spp-{variant}"
    seq, stats = render_sequence(spec, spp, variant, cache_dir=cache, progress=progress)
    # the writer names the storage file after the folder: write OUT/.tmp/<name>, then rename it
    tmp, bag = out / ".tmp" / spec.name, out / spec.name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(exist_ok=True)
    write_sequence_bag(seq, tmp, storage=spec.storage, encoding=spec.encoding)
    digest = bag_content_sha256(tmp)
    if bag.exists():
        shutil.rmtree(bag)
    os.replace(tmp, bag)
    if not keep_frames:
        shutil.rmtree(cache, ignore_errors=True)
    import mitsuba

    return {"content_sha256": digest, "spp": spp, "mitsuba_variant": variant, "mitsuba_version": mitsuba.__version__,
            "rendered_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **stats}


def build(specs: list[SequenceSpec], out: Path, spp: int, manifest_path: Path, variant: str | None = None,
          plan_only: bool = False, keep_frames: bool = False, progress: bool = True) -> dict:
    """Render (or plan) ``specs`` into ``out``; returns {name: "skipped" | "rendered" | "planned"}."""
    from benchmark.render import select_variant

    if not plan_only:
        from dfd_depth_ros.evaluation.bagio import write_sequence_bag  # noqa: F401  (fail before rendering)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(manifest_path)
    known = {s.name for s in (*SEQUENCES, *DEV_SEQUENCES)}
    manifest["sequences"] = {k: v for k, v in manifest["sequences"].items() if k in known}  # drop removed ones
    manifest["render_settings"] = {"spp": spp, "path_max_depth": 3, "reconstruction_filter": "box",
                                   "ground_truth": "pinhole z-depth through pixel centres (Mitsuba aov)"}
    result, chosen = {}, None
    for spec in specs:
        entry = _entry(manifest, spec)
        bag = out / spec.name
        if not plan_only and _up_to_date(bag, entry, spp):
            print(f"{spec.name}: up to date ({bag})", flush=True)
            result[spec.name] = "skipped"
            continue
        chosen = chosen or select_variant(variant)
        if plan_only:
            from benchmark.generate import plan_summary

            entry["plan"] = plan_summary(spec, chosen)
            result[spec.name] = "planned"
        else:
            previous = (entry.get("rendered") or {}).get("content_sha256")
            rendered = _render_one(spec, out, spp, chosen, keep_frames, progress)
            entry["rendered"] = rendered
            entry["plan"] = {k: rendered[k] for k in rendered if k in _PLAN_KEYS}
            if previous and previous != rendered["content_sha256"]:
                print(f"{spec.name}: note: not bit-identical with the recorded render", flush=True)
            print(f"{spec.name}: wrote {bag} ({rendered['seconds_per_frame']} s/frame)", flush=True)
            result[spec.name] = "rendered"
        _save_manifest(manifest, manifest_path)
    _save_manifest(manifest, manifest_path)
    return result


_PLAN_KEYS = ("fx_px", "f_number", "focal_length_m", "blur_scale_pxm", "max_blur_px", "depth_range_m",
              "focus_range_m", "focus_coverage", "sky_fraction")


def table(manifest: dict) -> str:
    """Markdown table of the manifest's sequences (plan numbers where known)."""
    head = ("| name | schedule | motion | size | frames | f/# | focal mm | fx*D px m | max blur px | focus m | "
            "depth m (1-99 %) | focus covers | enc | storage |")
    rows = [head, "|" + "---|" * 14]
    for name, e in manifest["sequences"].items():
        p = e.get("plan", {})

        def fmt(key, f="{:.2f}", p=p):
            v = p.get(key)
            return "-" if v is None else f.format(*v) if isinstance(v, list) else f.format(v)

        focal = "-" if "focal_length_m" not in p else f"{1000 * p['focal_length_m']:.2f}"
        flags = ("weak " if e["lens_regime"] == "weak" else "") + ("low-light " if e["low_light"] else "")
        rows.append(f"| {name} | {e['schedule']} | {e['motion']} | {e['size_px'][0]}x{e['size_px'][1]} | "
                    f"{e['frames']} | {fmt('f_number', '{:.1f}')} | "
                    f"{focal} | "
                    f"{fmt('blur_scale_pxm')} {flags}| {fmt('max_blur_px', '{:.1f}')} | "
                    f"{fmt('focus_range_m', '{:.2f}-{:.2f}')} | {fmt('depth_range_m', '{:.2f}-{:.2f}')} | "
                    f"{fmt('focus_coverage', '{:.0%}')} | {e['encoding']} | {e['storage']} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="bag folder (default data/benchmark, tiny: "
                                                           "data/benchmark-tiny)")
    ap.add_argument("--set", choices=tuple(SETS), default="test", help="test: the benchmark (default); dev: the "
                    "re-seeded model-selection set (default out data/benchmark_dev)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="render only these sequences")
    ap.add_argument("--spp", type=int, default=None, help=f"samples per pixel (default {DEFAULT_SPP}, tiny {TINY_SPP})")
    ap.add_argument("--tiny", action="store_true", help="64x48 px, 3 frames (tests)")
    ap.add_argument("--variant", default=None, help="Mitsuba variant (default: llvm_ad_rgb if it works, else "
                                                     "scalar_rgb)")
    ap.add_argument("--manifest", type=Path, default=None, help="manifest path (default: see module docstring)")
    ap.add_argument("--plan-only", action="store_true", help="compute lens, depth and focus ranges; no images")
    ap.add_argument("--list", action="store_true", help="print the manifest's table and exit")
    ap.add_argument("--keep-frames", action="store_true", help="keep the per-frame cache after a bag is written")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    sequences_mod.check_set()
    try:
        specs = [sequences_mod.by_name(n) for n in args.only] if args.only else list(SETS[args.set])
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    if args.tiny:
        specs = [sequences_mod.tiny(s) for s in specs]
    spp = args.spp or (TINY_SPP if args.tiny else DEFAULT_SPP)
    dev = args.set == "dev"
    out = args.out or Path("data/benchmark-tiny" if args.tiny else "data/benchmark_dev" if dev else "data/benchmark")
    committed = DEV_MANIFEST_PATH if dev else MANIFEST_PATH
    manifest_path = args.manifest or (committed if not args.tiny and spp == DEFAULT_SPP else out / "manifest.json")
    if args.list:
        print(table(load_manifest(manifest_path)))
        return 0
    try:
        import mitsuba  # noqa: F401
    except ImportError:
        print("mitsuba is not installed (it is in requirements-dev.txt)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    result = build(specs, out, spp, manifest_path, args.variant, args.plan_only, args.keep_frames,
                   not args.no_progress)
    counts = {k: sum(v == k for v in result.values()) for k in ("rendered", "skipped", "planned")}
    print(f"done in {time.perf_counter() - t0:.0f} s: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
          + f"; manifest {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
