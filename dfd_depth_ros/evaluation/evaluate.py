"""Bag replay evaluation: the live node's estimator over a contract bag, frame by frame.

    methods, notes = build_methods(MethodOptions(model=None, baselines=True))
    result = evaluate_bag("bags/sweep", methods, progress=True)
    result.metrics_json()   # the contract's metrics.json: {"bag", "frames", "methods": {...}}

Frames come from ``bagio.iter_bag_frames`` in stamp order (lens state interpolated at the image
stamp by the same LensHistory as the node; frames without a lens state or camera_info are
skipped and counted). Each method sees every frame:

    dfd_recurrent     core.DepthStream (what depth_node runs; its settings from MethodOptions.stream_options,
                      eval-bag passes the node's parameters), temporal state carried; its resets
                      (time_backwards, gap, resolution, ...) are counted by reason
    dfd_single_frame  DepthStream with the single-frame model, state zeroed before every frame
    depth_from_focus  depth_from_focus.DepthFromFocus, the classical baseline

Metrics are those of ``metrics.MetricAccumulator`` (the contract: metric depth, per frame, then
averaged over frames). Frames without ground truth are run (the state must see them) but not
scored, and flicker is not measured across them. Besides the contract numbers the result keeps
what the report needs: per-frame metrics, abs_rel binned by ground-truth depth and by blur
diameter (c_px = fx * D * |1/focus - 1/z|), the lens and blur ranges, and a few frames for a
picture strip. The same bag and models give the same numbers (ms_per_frame aside). No ROS.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfd_depth_ros.evaluation.bagio import (
    BagError,
    BagReadReport,
    BagTopics,
    bag_meta,
    iter_bag_frames,
    no_frames_message,
    open_bag,
    storage_name,
)
from dfd_depth_ros.evaluation.methods import (  # noqa: F401  (re-exported: callers import them from here)
    METHOD_DFF,
    METHOD_RECURRENT,
    METHOD_SINGLE_FRAME,
    DffMethod,
    EvalError,
    Method,
    MethodOptions,
    MethodOutput,
    StreamMethod,
    build_methods,
)
from dfd_depth_ros.frames import Frame
from dfd_depth_ros.metrics import FRAME_KEYS, MetricAccumulator, gt_mask

__all__ = [
    "BLUR_BIN_EDGES_PX",
    "CONTRACT_KEYS",
    "DEPTH_BIN_EDGES_M",
    "METHOD_DFF",
    "METHOD_RECURRENT",
    "METHOD_SINGLE_FRAME",
    "BagEvaluation",
    "DffMethod",
    "EvalError",
    "Method",
    "MethodOptions",
    "StreamMethod",
    "aggregate_metrics",
    "bag_name",
    "build_methods",
    "check_bag_path",
    "evaluate_bag",
    "json_number",
    "metrics_document",
]

CONTRACT_KEYS = (*FRAME_KEYS, "flicker", "ms_per_frame", "frames", "missing")
"""Per-method keys of metrics.json: the contract's, plus ``missing`` (the contract says it is reported)."""
DEFAULT_TOPICS = BagTopics()
DEPTH_BIN_EDGES_M = np.geomspace(0.1, 20.0, 16)
BLUR_BIN_EDGES_PX = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 60, np.inf])


# ----------------------------------------------------------------------------- accumulators


class BinnedError:
    """Mean abs_rel (|p - g| / g) of valid pixels, binned by a per-pixel key (GT depth, blur diameter)."""

    def __init__(self, edges: np.ndarray):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.sum = np.zeros(len(self.edges) - 1)
        self.count = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def add(self, key: np.ndarray, abs_rel: np.ndarray) -> None:
        """key, abs_rel: 1-D arrays of the valid pixels."""
        idx = np.searchsorted(self.edges, key, side="right") - 1
        ok = (idx >= 0) & (idx < len(self.count))
        self.sum += np.bincount(idx[ok], weights=abs_rel[ok], minlength=len(self.count))
        self.count += np.bincount(idx[ok], minlength=len(self.count))

    def mean(self) -> np.ndarray:
        """(bins,) mean abs_rel per bin, NaN for an empty bin."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), np.nan)


class Histogram:
    """Fine histogram of a positive quantity over many frames: exact min/max, quantiles to a bin."""

    def __init__(self, lo: float, hi: float, bins: int = 2000, log: bool = False):
        self.log = log
        self.edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
        self.counts = np.zeros(bins, dtype=np.int64)
        self.min, self.max = math.inf, -math.inf

    def add(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        self.min, self.max = min(self.min, float(values.min())), max(self.max, float(values.max()))
        idx = np.clip(np.searchsorted(self.edges, values, side="right") - 1, 0, len(self.counts) - 1)
        self.counts += np.bincount(idx, minlength=len(self.counts))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def quantile(self, q: float) -> float:
        """Approximate q-quantile (the centre of the bin it falls in, clipped to [min, max]); NaN when empty."""
        if self.total == 0:
            return math.nan
        i = int(np.searchsorted(np.cumsum(self.counts), q * self.total, side="left"))
        i = min(i, len(self.counts) - 1)
        lo, hi = self.edges[i], self.edges[i + 1]
        centre = math.sqrt(lo * hi) if self.log and lo > 0 else 0.5 * (lo + hi)
        return float(min(max(centre, self.min), self.max))


@dataclass
class MethodResult:
    """Everything one method produced on one bag."""

    name: str
    description: str
    reference: bool = False
    accumulator: MetricAccumulator = field(default_factory=MetricAccumulator)
    resets: Counter = field(default_factory=Counter)
    reset_frames: list[tuple[int, str]] = field(default_factory=list)
    by_depth: BinnedError = field(default_factory=lambda: BinnedError(DEPTH_BIN_EDGES_M))
    by_blur: BinnedError = field(default_factory=lambda: BinnedError(BLUR_BIN_EDGES_PX))
    frame_metrics: list[dict | None] = field(default_factory=list)  # per evaluated frame; None = no GT

    def summary(self) -> dict:
        """The contract's per-method dict (plus ``missing``); NaN where undefined."""
        s = self.accumulator.summary()
        return {k: s[k] for k in CONTRACT_KEYS}


@dataclass
class FrameInfo:
    """One evaluated frame: its index among the evaluated frames, stamp, lens, whether it has ground truth."""

    index: int
    stamp_ns: int
    focus_m: float
    f_number: float
    focal_length_m: float
    fx_px: float
    has_gt: bool


@dataclass
class StripFrame:
    """A frame kept for the picture strip: RGB, ground truth and each method's depth."""

    index: int
    image: np.ndarray
    gt_m: np.ndarray
    depth_m: dict[str, np.ndarray]
    focus_m: float


@dataclass
class BagEvaluation:
    """The result of ``evaluate_bag``: contract metrics plus what the report shows."""

    bag: Path
    name: str
    storage: str
    image_messages: int
    methods: dict[str, MethodResult]
    frames: list[FrameInfo]
    read: BagReadReport
    gt_depth: Histogram
    blur_px: Histogram
    strip: list[StripFrame]
    notes: list[str] = field(default_factory=list)
    excluded_frames: int = 0
    image_size: tuple[int, int] | None = None  # (width, height) of the first frame
    meta: dict = field(default_factory=dict)  # the sequence meta stored in the bag (schedule, motion, ...)

    @property
    def scored_frames(self) -> int:
        return sum(f.has_gt for f in self.frames)

    def summaries(self, references: bool = False) -> dict[str, dict]:
        """{name: summary} of the methods (``references``: of the reference rows instead)."""
        return {name: m.summary() for name, m in self.methods.items() if m.reference == references}

    def metrics_json(self) -> dict:
        """The contract's metrics.json (non-finite values as null), plus the reference rows and the bag's meta."""
        return metrics_document(self.name, self.scored_frames, self.summaries(), self.summaries(references=True),
                                self.meta)


def json_number(value):
    """A metric for JSON: finite floats as they are, NaN/inf as None (JSON has no NaN), ints unchanged."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def metrics_document(bag: str, frames: int, summaries: dict[str, dict], references: dict[str, dict] | None = None,
                     meta: dict | None = None) -> dict:
    """{"bag", "frames", "methods": {name: {abs_rel, ..., frames, missing}}}, as the bag contract writes it.

    With reference rows, also "references" (same keys; they read the ground truth, so they are not
    methods); with the bag's stored sequence meta, also "sequence".
    """
    def rows(table: dict[str, dict]) -> dict[str, dict]:
        return {name: {k: json_number(s[k]) for k in CONTRACT_KEYS} for name, s in table.items()}

    doc = {"bag": bag, "frames": int(frames), "methods": rows(summaries)}
    if references:
        doc["references"] = rows(references)
    if meta:
        doc["sequence"] = meta
    return doc


def bag_name(path: Path) -> str:
    """The bag's name for metrics.json: its folder name (or the file's stem for a bare .mcap/.db3)."""
    path = Path(path).resolve()
    return path.name if path.is_dir() else path.stem


# ----------------------------------------------------------------------------- the loop


def _image_messages(path: Path, topics: BagTopics) -> int:
    """Number of messages on the image topic, from the bag's index (no message is read)."""
    with open_bag(path) as reader:
        return sum(c.msgcount for c in reader.connections if c.topic == topics.image)


def _no_frames(path: Path, read: BagReadReport, lens_tolerance_s: float, excluded: int) -> EvalError:
    if excluded:
        return EvalError(f"bag {path}: none of its {read.frames} frames is among the stamps to evaluate")
    return EvalError(no_frames_message(path, read, lens_tolerance_s))


def evaluate_bag(path: str | Path, methods: list[Method], topics: BagTopics = DEFAULT_TOPICS,
                 lens_tolerance_s: float = 0.05, max_lens_gap_s: float = 1.0, progress: bool = False,
                 strip_frames: int = 4, stamps: set[int] | None = None) -> BagEvaluation:
    """Run ``methods`` over the bag's frames in stamp order; returns the BagEvaluation.

    The bag must have the depth_gt topic. ``stamps``: evaluate only frames with these image
    stamps (the others are read but skipped, as if never received: e.g. to reproduce a live run
    whose estimator never got some frames). Raises BagError (unreadable bag, missing or mistyped topic, bad encoding)
    and EvalError (no frame to evaluate, no ground truth at all).
    """
    from tqdm import tqdm

    path = Path(path)
    image_messages, storage = _image_messages(path, topics), storage_name(path)
    read = BagReadReport()
    results = {m.name: MethodResult(m.name, m.description, m.reference) for m in methods}
    for m in methods:
        m.start()
    infos: list[FrameInfo] = []
    strip: list[StripFrame] = []
    keep = set(np.linspace(0, max(image_messages - 1, 0), min(strip_frames, image_messages)).round().astype(int))
    gt_hist, blur_hist = Histogram(0.1, 20.0, log=True), Histogram(0.0, 200.0, bins=4000)
    excluded, size = 0, None
    frames = iter_bag_frames(path, topics, lens_tolerance_s, max_lens_gap_s, require_depth=True, report=read)
    bar = tqdm(frames, total=image_messages or None, desc=bag_name(path), unit="frame", leave=False,
               disable=None if progress else True)
    for frame in bar:
        if stamps is not None and frame.stamp_ns not in stamps:
            excluded += 1
            continue
        size = size or (frame.width, frame.height)
        info = FrameInfo(len(infos), frame.stamp_ns, frame.lens.focus_distance_m, frame.lens.f_number,
                         frame.lens.focal_length_m, frame.fx_px, frame.depth_m is not None)
        outputs = {m.name: m.process(frame) for m in methods}
        if frame.depth_m is None:
            _score_without_gt(results, outputs, info.index)
        else:
            _score(results, outputs, frame, info, gt_hist, blur_hist)
            if info.index in keep:
                strip.append(StripFrame(info.index, frame.image, frame.depth_m,
                                        {k: o.depth_m for k, o in outputs.items()}, info.focus_m))
        infos.append(info)
    bar.close()
    if not infos:
        raise _no_frames(path, read, lens_tolerance_s, excluded)
    if not any(f.has_gt for f in infos):
        raise EvalError(f"bag {path}: none of its {len(infos)} frames has a {topics.depth_gt} message "
                        "(ground truth shares the image's header.stamp)")
    return BagEvaluation(path, bag_name(path), storage, image_messages, results, infos, read, gt_hist, blur_hist,
                         strip, excluded_frames=excluded, image_size=size, meta=bag_meta(path))


def _note_reset(result: MethodResult, reason: str | None, index: int) -> None:
    if reason is not None:
        result.resets[reason] += 1
        result.reset_frames.append((index, reason))


def _score_without_gt(results: dict[str, MethodResult], outputs: dict[str, MethodOutput], index: int) -> None:
    for name, out in outputs.items():
        result = results[name]
        _note_reset(result, out.reset_reason, index)
        result.accumulator.reset_sequence()  # no flicker across a frame that is not scored
        result.frame_metrics.append(None)


def _score(results: dict[str, MethodResult], outputs: dict[str, MethodOutput], frame: Frame, info: FrameInfo,
           gt_hist: Histogram, blur_hist: Histogram) -> None:
    gt = frame.depth_m
    has_gt = gt_mask(gt)
    blur = frame.lens.blur_diameter_px(gt[has_gt].astype(np.float64), frame.fx_px)
    gt_hist.add(gt[has_gt].astype(np.float64))
    blur_hist.add(blur)
    blur_map = np.full(gt.shape, np.nan)
    blur_map[has_gt] = blur
    for name, out in outputs.items():
        result = results[name]
        _note_reset(result, out.reset_reason, info.index)
        m = result.accumulator.add(out.depth_m, gt, out.ms)
        m["reset_reason"] = out.reset_reason
        result.frame_metrics.append(m)
        with np.errstate(invalid="ignore"):
            valid = has_gt & np.isfinite(out.depth_m) & (out.depth_m > 0)
        g = gt[valid].astype(np.float64)
        abs_rel = np.abs(out.depth_m[valid].astype(np.float64) - g) / g
        result.by_depth.add(g, abs_rel)
        result.by_blur.add(blur_map[valid], abs_rel)


# ----------------------------------------------------------------------------- several bags


def aggregate_metrics(documents: list[dict]) -> dict[str, dict]:
    """Frame-weighted mean per method over several metrics.json documents.

    Each metric is weighted by the frames of the bags where it is defined; ``frames`` is the sum.
    """
    out: dict[str, dict] = {}
    names = list(dict.fromkeys(name for doc in documents for name in doc["methods"]))
    for name in names:
        rows = [doc["methods"][name] for doc in documents if name in doc["methods"]]
        agg: dict = {"frames": int(sum(r["frames"] for r in rows))}
        for key in CONTRACT_KEYS:
            if key == "frames":
                continue
            pairs = [(r[key], r["frames"]) for r in rows if r.get(key) is not None and r["frames"] > 0]
            weight = sum(w for _, w in pairs)
            agg[key] = sum(v * w for v, w in pairs) / weight if weight else None
        out[name] = {k: agg[k] for k in CONTRACT_KEYS}
    return out


def check_bag_path(path: str | Path) -> Path:
    """``path`` as a Path if it looks like a bag (folder with metadata.yaml, or .mcap/.db3 file); else BagError."""
    path = Path(path)
    if path.is_dir() and (path / "metadata.yaml").is_file():
        return path
    if path.is_file() and path.suffix in (".mcap", ".db3"):
        return path
    if not path.exists():
        raise BagError(f"{path}: no such file or folder")
    raise BagError(f"{path} is not a rosbag2 bag (a folder with metadata.yaml, or a .mcap/.db3 file)")
