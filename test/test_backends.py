"""Backends: ONNX Runtime and torch give the same depth over a recurrent rollout; bad files and missing
libraries fail with one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfd_depth_ros.backends import ModelLoadError, create_backend, open_backend
from dfd_depth_ros.backends.tensorrt_backend import engine_cache_key
from dfd_depth_ros.network import DfDNet, ModelConfig
from training.export import export_onnx

H, W = 48, 64


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return DfDNet(ModelConfig(hidden=16)).eval()


@pytest.fixture(scope="module")
def onnx_only(net, tmp_path_factory):
    """An exported model with no checkpoint beside it."""
    return export_onnx(net, tmp_path_factory.mktemp("onnx_only") / "dfd.onnx", height=H, width=W)


@pytest.fixture(scope="module")
def onnx_with_pt(net, tmp_path_factory):
    """models/-style pair: dfd.onnx + dfd.pt {"model", "model_config"}."""
    path = export_onnx(net, tmp_path_factory.mktemp("pair") / "dfd.onnx", height=H, width=W)
    torch.save({"model": net.state_dict(), "model_config": net.cfg.to_dict()}, path.with_suffix(".pt"))
    return path


def rollout(backend, steps: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Depth of ``steps`` frames with a focus change every frame; the state carries over."""
    rng = np.random.default_rng(seed)
    depths = []
    for i in range(steps):
        image = rng.random((1, 3, H, W), dtype=np.float32)
        lens = np.array([[4.0 + i, 1.0 / (0.4 + 0.3 * i)]], dtype=np.float32)
        depth, confidence = backend.infer(image, lens)
        assert depth.shape == (H, W) and confidence.shape == (H, W) and depth.dtype == np.float32
        depths.append(depth.copy())
    return depths


def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.mark.parametrize("model", ["onnx_only", "onnx_with_pt"])
def test_onnxruntime_and_torch_agree_over_recurrent_steps(model, request):
    path = request.getfixturevalue(model)
    ort_depths = rollout(open_backend("onnxruntime", path, threads=1))
    torch_depths = rollout(open_backend("torch", path, device="cpu"))
    assert max_diff(ort_depths, torch_depths) < 1e-4  # metres
    assert max_diff(ort_depths[1:], ort_depths[:-1]) > 1e-3  # the frames really differ


def test_torch_loads_checkpoint_directly(onnx_with_pt, net):
    backend = open_backend("torch", onnx_with_pt.with_suffix(".pt"), device="cpu")
    assert backend.model_config == net.cfg.to_dict()
    assert max_diff(rollout(backend, 2), rollout(open_backend("onnxruntime", onnx_with_pt), 2)) < 1e-4


def test_reset_state_forgets_the_past(onnx_only):
    backend = open_backend("onnxruntime", onnx_only)
    first = rollout(backend, 1, seed=5)[0]
    rollout(backend, 2, seed=6)
    backend.reset_state(H, W)
    np.testing.assert_array_equal(rollout(backend, 1, seed=5)[0], first)


def test_size_change_needs_reset(onnx_only):
    backend = open_backend("onnxruntime", onnx_only)
    rollout(backend, 1)
    with pytest.raises(ValueError, match="reset_state"):
        backend.infer(np.zeros((1, 3, 32, 32), np.float32), np.ones((1, 2), np.float32))
    backend.reset_state(32, 32)
    depth, _ = backend.infer(np.zeros((1, 3, 32, 32), np.float32), np.ones((1, 2), np.float32))
    assert depth.shape == (32, 32)


@pytest.mark.parametrize("name", ["onnxruntime", "torch"])
def test_missing_and_corrupt_models_raise_model_load_error(name, tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        open_backend(name, tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelLoadError) as info:
        open_backend(name, bad)
    assert "\n" not in str(info.value) and str(bad) in str(info.value)


def test_torch_checkpoint_must_match_its_config(net, tmp_path):
    path = tmp_path / "wrong.pt"
    torch.save({"model": net.state_dict(), "model_config": ModelConfig(hidden=8).to_dict()}, path)
    with pytest.raises(ModelLoadError, match="do not fit"):
        open_backend("torch", path, device="cpu")
    torch.save({"weights": net.state_dict()}, path)
    with pytest.raises(ModelLoadError, match="model_config"):
        open_backend("torch", path, device="cpu")


def test_auto_runs_the_backend_it_names(onnx_only):
    """auto's choice computes what that backend computes when asked for by name (CPU here: ONNX Runtime)."""
    backend = open_backend("auto", onnx_only)
    if not torch.cuda.is_available():
        assert (backend.name, backend.device) == ("onnxruntime", "cpu")
    named = open_backend(backend.name, onnx_only, **({"device": backend.device} if backend.name == "torch" else {}))
    assert max_diff(rollout(backend, 3), rollout(named, 3)) < 1e-4
    with pytest.raises(ModelLoadError, match="does not exist"):  # a bad path is not "unavailable": no fallback
        open_backend("auto", onnx_only.with_name("missing.onnx"))


def test_contract_stride_is_the_network_downsampling(net):
    from dfd_depth_ros.model_contract import STRIDE
    from dfd_depth_ros.network import STRIDE as NETWORK_STRIDE

    assert NETWORK_STRIDE == STRIDE
    assert net.initial_state(1, H, W).shape[2:] == (H // STRIDE, W // STRIDE)
    with pytest.raises(ValueError, match=f"multiples of {STRIDE}"):
        net(torch.zeros(1, 3, H + STRIDE // 2, W), torch.ones(1, 2), net.initial_state(1, H + STRIDE // 2, W))


def test_unknown_backend_name():
    with pytest.raises(ValueError, match="unknown backend"):
        create_backend("openvino")


def test_engine_cache_key_covers_every_build_input():
    base = dict(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", compute_capability=(8, 9), precision="fp16",
                height=240, width=320)
    key = engine_cache_key(**base)
    assert key == engine_cache_key(**base)
    assert all(c.isalnum() or c in "._-" for c in key)
    changes = [("onnx_sha256", "cd" * 32), ("tensorrt_version", "10.4.0"), ("compute_capability", (9, 0)),
               ("precision", "fp32"), ("height", 480), ("width", 640)]
    keys = {engine_cache_key(**{**base, name: value}) for name, value in changes}
    assert len(keys) == len(changes) and key not in keys
    with pytest.raises(ValueError, match="precision"):
        engine_cache_key(**{**base, "precision": "int8"})
