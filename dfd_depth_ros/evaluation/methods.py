"""The depth estimators bag evaluation runs, frame by frame, and how they are loaded.

    dfd_recurrent     DepthStream (what depth_node runs), temporal state carried
    dfd_single_frame  DepthStream with the state zeroed before every frame: the same model (or a separate
                      dfd_single_frame.onnx where one lies beside it), the ablation of the temporal state
    monocular         DepthStream on monocular.onnx (beside the model, or given): the same design trained without
                      any lens input (it sees the frames alone), the ablation of the lens model
    depth_from_focus  the simple classical baseline: sliding-window depth from focus (depth_from_focus.py)
    classical_dfd     the classical physics reference a learned model must beat: thin-lens cost volume over the
                      whole flow-aligned history, dense (focus_reference.py)
    median_floor, blur_oracle   reference rows that read the ground truth (references.py), not methods

Every method implements ``start()`` (before each bag) and ``process(frame) -> MethodOutput``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfd_depth_ros.errors import first_line
from dfd_depth_ros.evaluation.depth_from_focus import DepthFromFocus
from dfd_depth_ros.evaluation.references import ORACLE_NOISE_PX, blur_oracle, median_floor
from dfd_depth_ros.frames import Frame

METHOD_RECURRENT = "dfd_recurrent"
METHOD_SINGLE_FRAME = "dfd_single_frame"
METHOD_MONOCULAR = "monocular"
METHOD_DFF = "depth_from_focus"
METHOD_CLASSICAL = "classical_dfd"
SINGLE_FRAME_MODEL_FILE = "dfd_single_frame.onnx"
MONOCULAR_MODEL_FILE = "monocular.onnx"
REFERENCE_FLOOR = "median_floor"
REFERENCE_ORACLE = "blur_oracle"


class EvalError(Exception):
    """Evaluation cannot run (missing model, no usable frame, ...); the message is one line."""


@dataclass
class MethodOutput:
    """One method's estimate of one frame: (H, W) float32 depth (NaN = none), wall time, state reset."""

    depth_m: np.ndarray
    ms: float
    reset_reason: str | None = None


class Method:
    """A depth estimator evaluated frame by frame. ``start()`` before each bag, then ``process`` per frame.

    ``reference``: not a method but a reference row that reads the ground truth (references.py); scored
    like a method, reported apart from the methods.
    """

    name: str = ""
    description: str = ""
    reference: bool = False

    def start(self) -> None:
        raise NotImplementedError

    def process(self, frame: Frame) -> MethodOutput:
        raise NotImplementedError


class StreamMethod(Method):
    """core.DepthStream on a loaded backend: the node's code path (preprocessing, backend, state, resets).

    A fresh DepthStream per bag (its reset rules start from nothing) shares the loaded backend.
    ``reset_every_frame``: zero the state before every frame (no temporal memory).
    """

    def __init__(self, name: str, backend, description: str, reset_every_frame: bool = False, **stream_options):
        self.name, self.backend, self.description = name, backend, description
        self.reset_every_frame = reset_every_frame
        self.stream_options = stream_options
        self.stream = None

    def start(self) -> None:
        from dfd_depth_ros.depth_stream import DepthStream

        self.stream = DepthStream(backend=self.backend, **self.stream_options)

    def process(self, frame: Frame) -> MethodOutput:
        if self.reset_every_frame:
            self.stream.reset("request")
        t0 = time.perf_counter()
        result = self.stream.process(frame.image, frame.K, frame.lens, frame.stamp_ns, frame.frame_id)
        ms = 1e3 * (time.perf_counter() - t0)
        return MethodOutput(result.depth_m, ms, None if self.reset_every_frame else result.reset_reason)


class DffMethod(Method):
    """The classical depth-from-focus baseline (needs the focus to move; NaN until it has)."""

    name = METHOD_DFF
    description = "classical depth from focus (sliding window of 12 frames, Laplacian focus measure)"

    def __init__(self):
        self.dff = DepthFromFocus()

    def start(self) -> None:
        self.dff = DepthFromFocus()

    def process(self, frame: Frame) -> MethodOutput:
        t0 = time.perf_counter()
        depth = self.dff.process(frame.image, frame.K, frame.lens, frame.stamp_ns, frame.frame_id)
        return MethodOutput(depth, 1e3 * (time.perf_counter() - t0))


class ClassicalMethod(Method):
    """The classical physics reference: depth from focus/defocus over the whole flow-aligned history."""

    name = METHOD_CLASSICAL
    description = ("classical reference: thin-lens hypothesis cost volume over the whole history, aligned by DIS "
                   "flow, confidence-weighted fill (focus_reference.FocusReference)")

    def start(self) -> None:
        from dfd_depth_ros.evaluation.focus_reference import FocusReference

        self.estimator = FocusReference()

    def process(self, frame: Frame) -> MethodOutput:
        t0 = time.perf_counter()
        depth, _ = self.estimator.process(frame.image, frame.K, frame.lens, frame.stamp_ns, frame.frame_id)
        return MethodOutput(depth, 1e3 * (time.perf_counter() - t0))


class MedianFloor(Method):
    """Reference: each frame's ground-truth median everywhere (a method must beat it to have measured depth)."""

    name = REFERENCE_FLOOR
    description = "reference, not a method: each frame's ground-truth median depth everywhere"
    reference = True

    def start(self) -> None:
        pass

    def process(self, frame: Frame) -> MethodOutput:
        if frame.depth_m is None:
            return MethodOutput(np.full((frame.height, frame.width), np.nan, np.float32), 0.0)
        return MethodOutput(median_floor(frame.depth_m), 0.0)


class BlurOracle(Method):
    """Reference: per-pixel true blur + 0.5 px noise, side of the focal plane known, through the optics."""

    name = REFERENCE_ORACLE
    description = (f"reference, not a method: true blur + N(0, {ORACLE_NOISE_PX} px), side of the focal plane "
                   "known, per pixel through the thin-lens model")
    reference = True

    def start(self) -> None:
        self.rng = np.random.default_rng(0)  # the same noise for the same bag

    def process(self, frame: Frame) -> MethodOutput:
        if frame.depth_m is None:
            return MethodOutput(np.full((frame.height, frame.width), np.nan, np.float32), 0.0)
        return MethodOutput(blur_oracle(frame.depth_m, frame.lens, frame.fx_px, self.rng), 0.0)


@dataclass(frozen=True)
class MethodOptions:
    """What ``build_methods`` loads.

    model: the recurrent model (None: the shipped models/dfd_recurrent.onnx).
    backend: core backend name ("auto", "onnxruntime", "torch", "tensorrt"); threads: CPU threads.
    baselines: also dfd_single_frame, monocular (where its model exists), depth_from_focus and classical_dfd,
        and the two reference rows (median_floor, blur_oracle).
    single_frame_model: the single-frame model (None: dfd_single_frame.onnx beside the model when there is
        one, else the model itself; either way its state is zeroed before every frame).
    monocular_model: the monocular baseline (None: monocular.onnx beside the model when there is one, else no
        monocular row).
    stream_options: keyword options of core.DepthStream for both DepthStream methods
        (max_gap_periods, min_depth_m, max_depth_m, min_confidence; None: DepthStream's
        defaults). eval-bag passes the depth node's, ``DepthNodeConfig.stream_options()``.
    """

    model: Path | None = None
    backend: str = "auto"
    threads: int | None = None
    baselines: bool = False
    single_frame_model: Path | None = None
    monocular_model: Path | None = None
    stream_options: dict | None = None


def _open(model: Path, options: MethodOptions):
    from dfd_depth_ros.backends import BackendUnavailable, ModelLoadError, open_backend

    try:
        return open_backend(options.backend, model, threads=options.threads)
    except (BackendUnavailable, ModelLoadError, ValueError) as exc:
        raise EvalError(f"cannot load {model}: {first_line(exc)}") from None


def _describe(backend, what: str) -> str:
    cfg = getattr(backend, "model_config", {}) or {}
    arch = f", {cfg['name']}" if cfg.get("name") else ""
    return f"DepthStream, {backend.model_path}{arch}, {backend.name} on {backend.device}, {what}"


def build_methods(options: MethodOptions) -> tuple[list[Method], list[str]]:
    """Load the methods to evaluate -> (methods, notes for the report). EvalError when the main model fails."""
    from dfd_depth_ros.depth_stream import DepthStream
    from dfd_depth_ros.package_paths import default_model_path

    model = Path(options.model) if options.model is not None else default_model_path()
    if not model.is_file():
        hint = "" if options.model is not None else " (the shipped default; pass --model)"
        raise EvalError(f"no model at {model}{hint}")
    backend = _open(model, options)
    stream_options = dict(options.stream_options or {})
    try:
        DepthStream(backend=backend, **stream_options)  # refuse bad settings now, not at the first frame
    except (TypeError, ValueError) as exc:
        raise EvalError(f"depth settings {stream_options}: {first_line(exc)}") from None
    methods: list[Method] = [StreamMethod(METHOD_RECURRENT, backend, _describe(backend, "temporal state carried"),
                                          **stream_options)]
    notes: list[str] = []
    if not options.baselines:
        return methods, notes
    single = options.single_frame_model
    if single is not None and not Path(single).is_file():
        raise EvalError(f"no single-frame model at {single}")
    if single is None:
        beside = model.with_name(SINGLE_FRAME_MODEL_FILE)
        single = beside if beside.is_file() else model
    sf = _open(Path(single), options)
    methods.append(StreamMethod(METHOD_SINGLE_FRAME, sf, _describe(sf, "state zeroed before every frame"),
                                reset_every_frame=True, **stream_options))
    mono = options.monocular_model
    if mono is not None and not Path(mono).is_file():
        raise EvalError(f"no monocular model at {mono}")
    if mono is None and model.with_name(MONOCULAR_MODEL_FILE).is_file():
        mono = model.with_name(MONOCULAR_MODEL_FILE)
    if mono is not None:
        mb = _open(Path(mono), options)
        methods.append(StreamMethod(METHOD_MONOCULAR, mb, _describe(mb, "no lens input, state carried"),
                                    **stream_options))
    else:
        notes.append(f"no {METHOD_MONOCULAR} row: no {MONOCULAR_MODEL_FILE} beside {model}")
    methods += [DffMethod(), ClassicalMethod(), MedianFloor(), BlurOracle()]
    return methods, notes
