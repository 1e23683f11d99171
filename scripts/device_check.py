#!/usr/bin/env python3
"""GPU check of dfd_depth_ros: torch CUDA against ONNX Runtime CPU, and the node's per-frame cost.

    scripts/device_check.sh                   # on the GPU machine: CUDA when torch sees it
    python3 scripts/device_check.py --cpu     # anywhere: the same checks on the CPU, fewer frames

Runs from the repository without installing it, with only torch, onnxruntime and numpy
(OpenCV is used when present; without it a numpy stand-in for the one OpenCV call these
sizes need, cv2.split, is put in its place and the report says so). Measures:

1. parity: DepthStream.process over 8 recurrent steps of a generated focus sweep (320x240),
   ONNX Runtime CPU on models/dfd_recurrent.onnx against the torch backend on the device with
   models/dfd_recurrent.pt: max |depth diff| (m) per step, with cuDNN's TF32 allowed (torch's
   default, what the node runs) and with it off;
2. timing: DepthStream.process with the torch backend (state kept on the device) at 320x240,
   640x480 and 1280x720: per-stage and total ms, p50 and p95; on CUDA also with the network
   call captured in a CUDA graph (and the graph's depth against the eager one).

Writes JSON to $OUT/device_check.json if $OUT is set, else to out/device_check.json, and prints
a summary. Exit status 0 when the parity check passes, 1 when it does not.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODEL = REPO / "models" / "dfd_recurrent.onnx"
SIZES = ((240, 320), (480, 640), (720, 1280))  # (H, W) px
PARITY_STEPS = 8
PARITY_TOLERANCE_M = 1e-3  # fp32 (TF32 off); ONNX Runtime vs torch on CPU measures about 4e-6 m
FRAME_PERIOD_NS = 33_333_333
T0 = time.perf_counter()


def module_version(name: str) -> str | None:
    """The version of an importable module, None when absent, a note when present but broken."""
    try:
        if importlib.util.find_spec(name) is None:
            return None
    except ValueError:  # sys.modules[name] is None: blocked
        return None
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # present but broken (missing shared libraries, wrong CUDA)
        return f"present, does not import: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "present"
    return str(version)


def ensure_cv2() -> str:
    """'opencv X', or install a numpy stand-in for cv2.split (all these sizes need) and say so."""
    version = module_version("cv2")
    if version and not version.startswith("present"):
        return f"opencv {version}"
    shim = types.ModuleType("cv2")
    shim.split = lambda image: tuple(image[:, :, c] for c in range(image.shape[2]))
    shim.__getattr__ = lambda name: (_ for _ in ()).throw(AttributeError(f"cv2 stand-in has no {name}"))
    sys.modules["cv2"] = shim
    return "missing: a numpy stand-in for cv2.split is used (convert/preprocess timings are not OpenCV's)"


def environment(torch, device: str, cv2_note: str) -> dict:
    import onnxruntime as ort

    env = {"python": platform.python_version(), "machine": platform.machine(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(), "device": device,
           "onnxruntime": ort.__version__, "onnxruntime_providers": ort.get_available_providers(),
           "numpy": np.__version__, "opencv": cv2_note, "cpu_count": os.cpu_count(),
           **{name: module_version(name) for name in ("tensorrt", "onnx", "rclpy", "rosbags", "skimage")}}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
        env["compute_capability"] = list(torch.cuda.get_device_capability(0))
    return env


def sweep_frames(height: int, width: int, count: int, seed: int = 3) -> tuple[list, str]:
    """(image (H, W, 3) uint8, K, LensState) of a generated focus sweep; a procedural texture if it fails."""
    try:
        from dfd_depth_ros.synthetic.sequences import SequenceConfig, generate_sequence

        seq = generate_sequence(SequenceConfig(width_px=width, height_px=height, num_frames=count,
                                               schedule="sweep", seed=seed))
        return [(f.image, f.K, f.lens) for f in seq.frames], "generated focus sweep (dfd_depth_ros.synthetic)"
    except Exception as exc:  # report, and keep measuring on something image-like
        from dfd_depth_ros.optics import LensState

        rng = np.random.default_rng(seed)
        base = np.cumsum(np.cumsum(rng.normal(size=(height, width, 3)), 0), 1)
        image = (255 * (base - base.min()) / np.ptp(base)).astype(np.uint8)
        K = np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1.0]])
        lenses = [LensState(0.5 + 3.0 * i / max(count - 1, 1), 2.0, 0.025) for i in range(count)]
        return [(image, K, lens) for lens in lenses], f"procedural texture (generator failed: {exc})"


def run_stream(stream, frames, n: int) -> tuple[list[np.ndarray], list[dict]]:
    """DepthStream.process over n frames (the clip cycled, stamps one period apart) -> depths, timings."""
    depths, timings = [], []
    for i in range(n):
        image, K, lens = frames[i % len(frames)]
        t0 = time.perf_counter()
        result = stream.process(image, K, lens, (i + 1) * FRAME_PERIOD_NS, "camera_optical_frame")
        timings.append({**result.timings_ms, "total": 1e3 * (time.perf_counter() - t0)})
        depths.append(result.depth_m)
    return depths, timings


def parity(torch, device: str, frames) -> dict:
    """Max |depth diff| (m) per step: ONNX Runtime CPU (.onnx) vs the torch backend on ``device`` (.pt)."""
    from dfd_depth_ros.backends import open_backend
    from dfd_depth_ros.depth_stream import DepthStream

    want, _ = run_stream(DepthStream(backend=open_backend("onnxruntime", MODEL)), frames, PARITY_STEPS)
    out = {"model": MODEL.name, "checkpoint": MODEL.with_suffix(".pt").name, "steps": PARITY_STEPS,
           "size": f"{frames[0][0].shape[1]}x{frames[0][0].shape[0]}", "tolerance_m": PARITY_TOLERANCE_M}
    modes = {"tf32_allowed": True, "tf32_off": False} if device.startswith("cuda") else {"fp32": False}
    for mode, tf32 in modes.items():
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        backend = open_backend("torch", MODEL.with_suffix(".pt"), device=device)
        got, _ = run_stream(DepthStream(backend=backend), frames, PARITY_STEPS)
        out[mode] = {"max_abs_depth_diff_m": [float(np.nanmax(np.abs(a - b))) for a, b in zip(got, want)],
                     "max_rel_depth_diff": [float(np.nanmax(np.abs(a - b) / b)) for a, b in zip(got, want)],
                     "nan_mismatch_px": [int((np.isnan(a) != np.isnan(b)).sum()) for a, b in zip(got, want)]}
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False  # torch's defaults
    strict = out["tf32_off" if device.startswith("cuda") else "fp32"]
    out["ok"] = max(strict["max_abs_depth_diff_m"]) <= PARITY_TOLERANCE_M and not any(strict["nan_mismatch_px"])
    return out


def graphed_backend_class():
    """TorchBackend whose network call is a CUDA graph replay (one graph per input size)."""
    import torch

    from dfd_depth_ros.backends.torch_backend import TorchBackend

    class GraphedTorchBackend(TorchBackend):
        name = "torch+cuda_graph"

        def _zero_state(self, height: int, width: int) -> None:
            graphs = self.__dict__.setdefault("_graphs", {})
            if (height, width) not in graphs:
                graphs[(height, width)] = self._capture(height, width)
            self._g = graphs[(height, width)]
            self._g["state"].zero_()

        def _capture(self, height: int, width: int) -> dict:
            with torch.no_grad():
                io = {"image": torch.zeros(1, 3, height, width, device=self.device),
                      "lens": torch.tensor([[5.0, 0.5]], device=self.device),
                      "state": self._net.initial_state(1, height, width, device=self.device)}
                extra = []
                if self.takes_flow:  # the flow input lives at the state's resolution
                    io["flow"] = torch.zeros(1, 2, *io["state"].shape[2:], device=self.device)
                    extra = [io["flow"]]
                side = torch.cuda.Stream(device=self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
                    for _ in range(3):
                        self._net(io["image"], io["lens"], io["state"], *extra)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    io["depth"], io["confidence"], io["state_out"] = self._net(io["image"], io["lens"], io["state"],
                                                                               *extra)
            return {**io, "graph": graph}

        def _run(self, image: np.ndarray, lens: np.ndarray, *flow: np.ndarray):
            g = self._g
            g["image"].copy_(torch.from_numpy(image))
            g["lens"].copy_(torch.from_numpy(lens))
            if flow:
                g["flow"].copy_(torch.from_numpy(flow[0]))
            g["graph"].replay()
            g["state"].copy_(g["state_out"])  # the next frame's state input
            # copy=True: the caller owns the arrays (on the CPU .cpu() would hand out the static buffer)
            return (g["depth"][0, 0].to("cpu", copy=True).numpy(), g["confidence"][0, 0].to("cpu", copy=True).numpy())

    return GraphedTorchBackend


def percentiles(timings: list[dict]) -> dict:
    return {stage: {"p50_ms": round(float(np.percentile([t[stage] for t in timings], 50)), 3),
                    "p95_ms": round(float(np.percentile([t[stage] for t in timings], 95)), 3)}
            for stage in timings[0]}


def timing(torch, device: str, warmup: int, frames_per_size: int, distinct: int, save=lambda out: None) -> dict:
    """Per-stage DepthStream.process cost at each size, eager and (CUDA) graph-captured network call.

    ``save(out)`` is called after each size, so a run cut short still leaves what it measured.
    """
    from dfd_depth_ros.backends import open_backend
    from dfd_depth_ros.depth_stream import DepthStream

    cuda = device.startswith("cuda")
    out = {}
    for height, width in SIZES:
        frames, source = sweep_frames(height, width, distinct)
        entry = {"frames_timed": frames_per_size, "warmup": warmup, "frames": source, "started_s": round(
            time.perf_counter() - T0, 1)}
        variants = {"eager": open_backend("torch", MODEL, device=device)}
        if cuda:
            graphed = graphed_backend_class()(device=device)
            graphed.load(MODEL)
            variants["cuda_graph"] = graphed
        else:
            entry["cuda_graph"] = "skipped: no CUDA"
        depths = {}
        for name, backend in variants.items():
            stream = DepthStream(backend=backend)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            run_stream(stream, frames, warmup)
            stream.reset()
            depths[name], timings = run_stream(stream, frames, frames_per_size)
            state = getattr(backend, "_state", None)
            state_device = str(state.device) if state is not None else str(backend._g["state"].device)
            entry[name] = {**percentiles(timings), "fps_p50": round(1e3 / percentiles(timings)["total"]["p50_ms"], 1),
                           "state_device": state_device}
            if cuda:
                entry[name]["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if "cuda_graph" in depths:
            entry["cuda_graph_vs_eager_max_abs_depth_diff_m"] = float(max(
                np.nanmax(np.abs(a - b)) for a, b in zip(depths["cuda_graph"], depths["eager"])))
        out[f"{width}x{height}"] = entry
        save(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even where CUDA is available")
    ap.add_argument("--frames", type=int, help="timed frames per size (default: 200 on CUDA, 3 on CPU)")
    ap.add_argument("--warmup", type=int, help="untimed frames per size first (default: 20 on CUDA, 1 on CPU)")
    ap.add_argument("--out", help="JSON path (default: $OUT/device_check.json, else out/device_check.json)")
    args = ap.parse_args(argv)
    cv2_note = ensure_cv2()
    import torch

    cuda = torch.cuda.is_available() and not args.cpu
    device = "cuda:0" if cuda else "cpu"
    if not cuda:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    report = {"environment": environment(torch, device, cv2_note), "complete": False}
    path = Path(args.out) if args.out else Path(os.environ["OUT"]) / "device_check.json" if os.environ.get("OUT") \
        else REPO / "out" / "device_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)

    def save(**parts) -> None:
        report.update(parts, wall_s=round(time.perf_counter() - T0, 1))
        path.write_text(json.dumps(report, indent=2) + "\n")

    frames, source = sweep_frames(*SIZES[0], PARITY_STEPS)
    save(parity={**parity(torch, device, frames), "frames": source})
    timing(torch, device, args.warmup if args.warmup is not None else (20 if cuda else 1),
           args.frames or (200 if cuda else 3), distinct=8 if cuda else 2, save=lambda out: save(timing=out))
    save(complete=True)
    print_summary(report, path)
    return 0 if report["parity"]["ok"] else 1


def print_summary(report: dict, path: Path) -> None:
    env, par = report["environment"], report["parity"]
    print(f"device {env['device']} ({env.get('gpu', 'CPU')}), torch {env['torch']} (CUDA {env['torch_cuda']}), "
          f"onnxruntime {env['onnxruntime']}, tensorrt {env['tensorrt']}, opencv: {env['opencv']}")
    for mode in ("tf32_allowed", "tf32_off", "fp32"):
        if mode in par:
            print(f"parity {par['size']} x {par['steps']} steps, {mode}: max |depth diff| "
                  f"{max(par[mode]['max_abs_depth_diff_m']):.2e} m (per step "
                  + ", ".join(f"{v:.1e}" for v in par[mode]["max_abs_depth_diff_m"]) + ")")
    print(f"parity {'ok' if par['ok'] else 'FAILED'} (tolerance {par['tolerance_m']} m)")
    for size, entry in report["timing"].items():
        for name in ("eager", "cuda_graph"):
            if isinstance(entry.get(name), dict):
                e = entry[name]
                print(f"{size} {name:10s} total p50 {e['total']['p50_ms']:8.2f} ms p95 {e['total']['p95_ms']:8.2f} ms"
                      f" | inference p50 {e['inference']['p50_ms']:8.2f} ms | {e['fps_p50']} fps | "
                      f"state on {e['state_device']}")
    print(f"wrote {path} in {report['wall_s']} s")


if __name__ == "__main__":
    raise SystemExit(main())
