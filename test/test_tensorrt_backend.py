"""The TensorRT backend against a small stub of the TensorRT 10 Python API (no machine here has TensorRT).

The stub is honest where the backend's logic lives: its "engine" runs the real ONNX model with
ONNX Runtime, reading its inputs from and writing its outputs to the raw addresses the backend
binds with ``set_tensor_address`` (CPU torch tensors stand in for device buffers), so a wrong
binding or a broken state ping-pong shows up as wrong depth. Its builder records the
optimization profiles and flags, its runtime refuses blobs it did not write, and
``torch.cuda`` is replaced by a recorder of the current device and stream.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

import numpy as np
import pytest
import torch

from dfd_depth_ros.backends import BackendUnavailable, ModelLoadError, auto_candidates, open_backend
from dfd_depth_ros.backends import tensorrt_backend as trt_backend
from dfd_depth_ros.backends.tensorrt_backend import TensorRTBackend, parse_engine_sizes
from dfd_depth_ros.network import DfDNet, ModelConfig
from training.export import export_onnx

ort = pytest.importorskip("onnxruntime")

H, W = 48, 64


from tensorrt_stub import CUDA, MAGIC, make_stub  # noqa: E402  (test/ helper module)


@pytest.fixture
def stub_world(monkeypatch, tmp_path):
    """Install a working stub; returns a function to replace it (version, fail)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "device", CUDA.device)
    monkeypatch.setattr(torch.cuda, "stream", CUDA.stream)
    monkeypatch.setattr(torch.cuda, "Stream", CUDA.make_stream)
    monkeypatch.setattr(trt_backend, "buffer_device", lambda torch_, index: torch.device("cpu"))

    def install(version="10.3.0", fail=None):
        stub = make_stub(version, fail)
        monkeypatch.setitem(sys.modules, "tensorrt", stub)
        return stub

    install.cache = tmp_path / "engines"
    install.trt = install()
    return install


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    net = DfDNet(ModelConfig(hidden=16)).eval()
    return export_onnx(net, tmp_path_factory.mktemp("trt") / "dfd.onnx", height=H, width=W)


def frames(steps: int, h: int = H, w: int = W, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(steps):
        yield rng.random((1, 3, h, w), dtype=np.float32), np.array([[4.0 + i, 1.0 / (0.4 + 0.3 * i)]], np.float32)


def rollout(backend, steps: int = 5, h: int = H, w: int = W) -> list[np.ndarray]:
    return [backend.infer(image, lens)[0].copy() for image, lens in frames(steps, h, w)]


def trt(stub_world, **options) -> TensorRTBackend:
    return TensorRTBackend(cache_dir=stub_world.cache, **{"engine_sizes": [f"{W}x{H}"], **options})


# ----------------------------------------------------------------------------- tests


def test_engine_sizes_parse_and_round_up_to_the_stride():
    assert parse_engine_sizes("640x480, 1280x722") == ((480, 640), (728, 1280))
    assert parse_engine_sizes(["320x240", (240, 320), (100, 60)]) == ((240, 320), (104, 64))
    assert parse_engine_sizes("") == ()
    with pytest.raises(ValueError, match="WxH"):
        parse_engine_sizes("640*480")


def test_each_declared_size_gets_a_fixed_profile_built_in_load(stub_world, model):
    backend = trt(stub_world, engine_sizes=f"{W}x{H},32x32")
    backend.load(model)
    builds = stub_world.trt.builds
    assert len(builds) == 2, "one engine per declared size, built in load()"
    channels = 16 + 2
    for build, (h, w) in zip(builds, [(H, W), (32, 32)]):
        expected = {"image": (1, 3, h, w), "lens": (1, 2), "state": (1, channels, h // 8, w // 8)}
        assert build["shapes"] == {name: (shape, shape, shape) for name, shape in expected.items()}
        assert build["flags"] == {"fp16"}
    assert build["timing_entries_in"] == [f"conv tactics for {(1, 3, H, W)}"], "the second build reuses the cache"
    assert backend.timing_cache_path().parent == backend.engine_path(H, W).parent == stub_world.cache
    assert json.loads(backend.timing_cache_path().read_text()) == [f"conv tactics for {(1, 3, h, w)}"
                                                                   for h, w in [(H, W), (32, 32)]]
    assert backend.model_config == ModelConfig(hidden=16).to_dict()
    rollout(backend, 2)
    assert len(stub_world.trt.builds) == 2, "nothing is built once frames flow"


def test_state_ping_pong_matches_onnxruntime_over_five_steps(stub_world, model):
    backend = trt(stub_world)
    backend.load(model)
    got = rollout(backend)
    want = rollout(open_backend("onnxruntime", model, threads=1))
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, want)) < 1e-6
    memoryless = []
    for image, lens in frames(5):  # what a backend that drops state_out would give
        cpu = open_backend("onnxruntime", model, threads=1)
        memoryless.append(cpu.infer(image, lens)[0])
    assert min(float(np.abs(a - b).max()) for a, b in zip(got[1:], memoryless[1:])) > 1e-4
    backend.reset_state(H, W)
    np.testing.assert_allclose(rollout(backend, 1)[0], want[0], atol=1e-6)  # reset = zero state


def test_cached_engine_is_reused_and_rebuilt_when_it_does_not_deserialize(stub_world, model, caplog):
    trt(stub_world).load(model)
    assert len(stub_world.trt.builds) == 1
    again = trt(stub_world)
    again.load(model)
    assert len(stub_world.trt.builds) == 1, "the cached engine is deserialized, not rebuilt"
    path = again.engine_path(H, W)
    path.write_bytes(b"an engine of another TensorRT build")
    with caplog.at_level(logging.WARNING):
        rebuilt = trt(stub_world)
        rebuilt.load(model)
    assert len(stub_world.trt.builds) == 2 and "rebuilding" in caplog.text
    assert path.read_bytes().startswith(MAGIC)
    want = rollout(open_backend("onnxruntime", model, threads=1), 3)
    assert max(float(np.abs(a - b).max()) for a, b in zip(rollout(rebuilt, 3), want)) < 1e-6


def test_size_change_uses_the_second_engine_and_an_undeclared_size_is_refused(stub_world, model):
    backend = trt(stub_world, engine_sizes=[(H, W), (32, 40)])
    backend.load(model)
    rollout(backend, 2)
    backend.reset_state(32, 40)
    got = rollout(backend, 3, 32, 40)
    want = rollout(open_backend("onnxruntime", model, threads=1), 3, 32, 40)
    assert max(float(np.abs(a - b).max()) for a, b in zip(got, want)) < 1e-6
    with pytest.raises(ValueError, match="add '16x16' to engine_sizes"):
        backend.reset_state(16, 16)
    assert len(stub_world.trt.builds) == 2


def test_worker_threads_run_on_the_chosen_device_and_the_owned_stream(stub_world, model):
    backend = trt(stub_world, device_index=1)
    backend.load(model)
    errors = []
    worker = threading.Thread(target=lambda: errors.append(rollout(backend, 2) and None))
    worker.start()
    worker.join(60)
    assert errors == [None]
    assert stub_world.trt.executions == [(1, backend._stream.cuda_stream)] * 2
    assert backend._stream.cuda_stream != 0, "not the legacy default stream"


@pytest.mark.parametrize(("version", "fail", "match"), [
    ("11.0.0", None, "not supported yet"),
    ("8.6.1", None, "too old"),
    ("10.3.0", "parse", "cannot parse"),
    ("10.3.0", "build", "failed to build"),
    ("10.3.0", "builder_raises", "CUDA initialization failure"),
])
def test_every_tensorrt_failure_is_backend_unavailable(stub_world, model, version, fail, match):
    stub_world(version, fail)
    with pytest.raises(BackendUnavailable, match=match) as info:
        trt(stub_world).load(model)
    assert "\n" not in str(info.value)


def test_missing_library_no_gpu_and_no_sizes_are_backend_unavailable(stub_world, model, monkeypatch, tmp_path):
    with pytest.raises(BackendUnavailable, match="engine_sizes"):
        TensorRTBackend(cache_dir=stub_world.cache).load(model)
    with pytest.raises(BackendUnavailable, match="no CUDA device 3"):
        trt(stub_world, device_index=3).load(model)
    checkpoint = tmp_path / "dfd.pt"
    checkpoint.write_bytes(b"weights")
    with pytest.raises(BackendUnavailable, match=r"builds from an \.onnx"):  # auto moves on to torch
        trt(stub_world).load(checkpoint)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(BackendUnavailable, match="TensorRT does not import"):
        trt(stub_world).load(model)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    stub_world()
    with pytest.raises(BackendUnavailable, match="CUDA GPU"):
        trt(stub_world).load(model)


def test_a_bad_model_file_is_model_load_error_even_for_auto(stub_world, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        trt(stub_world).load(bad)
    with pytest.raises(ModelLoadError):
        open_backend("auto", bad, engine_sizes=f"{W}x{H}")


def test_auto_prefers_tensorrt_and_falls_back_with_one_line(stub_world, model, caplog):
    assert auto_candidates() == ["tensorrt", "torch", "onnxruntime"]
    engine_dir = {"engine_cache_dir": stub_world.cache, "engine_sizes": f"{W}x{H}"}
    assert open_backend("auto", model, **engine_dir).name == "tensorrt"
    stub_world("10.3.0", "builder_raises")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dfd_depth_ros.backends"):  # an empty cache: it must build
        backend = open_backend("auto", model, **{**engine_dir, "engine_cache_dir": stub_world.cache / "fresh"})
    # torch is next but this CPU build cannot move to "cuda:0" (unavailable too): ONNX Runtime runs
    assert backend.name == "onnxruntime"
    lines = [r.getMessage() for r in caplog.records if r.name == "dfd_depth_ros.backends"]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert lines[0].startswith("backend auto: tensorrt is not available (TensorRT failed on dfd.onnx: CUDA "
                               "initialization failure") and lines[0].endswith("trying torch")
    want = rollout(open_backend("onnxruntime", model, threads=1), 2)
    assert max(float(np.abs(a - b).max()) for a, b in zip(rollout(backend, 2), want)) < 1e-6


def test_export_builds_the_engine_ahead_of_time(stub_world, model, monkeypatch, tmp_path):
    from dfd_depth_ros.package_paths import CACHE_ENV
    from training.export import build_tensorrt_engine

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = build_tensorrt_engine(model, width=60, height=44)  # padded to 64x48, as DepthStream pads
    assert path.parent == tmp_path / "cache" / "engines" and path.read_bytes().startswith(MAGIC)
    assert stub_world.trt.builds[0]["shapes"]["image"][1] == (1, 3, 48, 64)
    backend = TensorRTBackend(engine_sizes=[(48, 64)])
    backend.load(model)  # the node's start-up then finds it in the cache
    assert len(stub_world.trt.builds) == 1


def test_focus_volume_model_builds_fp32_with_its_flow_input_and_matches_onnxruntime(stub_world, tmp_path):
    """The shipped design: a stride-2 state, a flow input bound like the image, and an FP32 engine (its evidence
    underflows FP16)."""
    from dfd_depth_ros.backends.onnxruntime_backend import OnnxRuntimeBackend
    from dfd_depth_ros.focus_volume_network import FocusVolumeConfig, FocusVolumeNet

    torch.manual_seed(0)
    net = FocusVolumeNet(FocusVolumeConfig(width=8, flow_input=True)).eval()
    path = export_onnx(net, tmp_path / "fv.onnx", height=H, width=W)
    backend = trt(stub_world)
    backend.load(path)
    assert backend.precision == "fp32" and backend.takes_flow and backend.state_stride == 2
    build = stub_world.trt.builds[-1]
    assert build["flags"] == set()
    assert build["shapes"]["state"][0] == (1, net.state_channels, H // 2, W // 2)
    assert build["shapes"]["flow"][0] == (1, 2, H // 2, W // 2)
    cpu = OnnxRuntimeBackend()
    cpu.load(path)
    rng = np.random.default_rng(1)
    for image, lens in frames(4):
        flow = rng.normal(0, 1, (1, 2, H // 2, W // 2)).astype(np.float32)
        np.testing.assert_allclose(backend.infer(image, lens, flow)[0], cpu.infer(image, lens, flow)[0], rtol=1e-5)
