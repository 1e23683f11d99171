"""The models shipped in models/ load, run, match their .pt checkpoints and say what they are.

On a generated focus sweep (textured scene, true lens inputs), through DepthStream as the node
runs it: ONNX Runtime on the .onnx against the torch backend on the .pt beside it, over the
recurrent steps of a clip.
"""

from __future__ import annotations

import numpy as np
import pytest

from dfd_depth_ros.backends.tensorrt_backend import file_sha256
from dfd_depth_ros.depth_stream import DepthStream
from dfd_depth_ros.model_contract import METADATA_KEY, parse_model_metadata, read_onnx_metadata
from dfd_depth_ros.package_paths import default_model_path, repo_models_dir

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

MODELS = ("dfd_recurrent", "dfd_single_frame")
STEPS = 5


@pytest.fixture(scope="module")
def sweep():
    from dfd_depth_ros.synthetic.sequences import SequenceConfig, generate_sequence

    return generate_sequence(SequenceConfig(width_px=160, height_px=120, num_frames=STEPS, schedule="sweep",
                                            seed=3)).frames


def model_path(name: str):
    path = repo_models_dir() / f"{name}.onnx"
    assert path.is_file() and path.with_suffix(".pt").is_file(), f"{path} or its .pt checkpoint is missing"
    return path


def run(stream: DepthStream, frames) -> list[np.ndarray]:
    return [stream.process(f.image, f.K, f.lens, f.stamp_ns, f.frame_id).depth_m for f in frames]


def test_the_default_model_is_the_shipped_recurrent_one():
    path = default_model_path()
    assert path.is_file(), f"the node's default model {path} is missing"
    assert file_sha256(path) == file_sha256(model_path("dfd_recurrent"))  # the share copy or the repo's


@pytest.mark.parametrize("name", MODELS)
def test_metadata_names_the_right_config(name):
    path = model_path(name)
    meta = parse_model_metadata(read_onnx_metadata(path).get(METADATA_KEY), path)
    config = meta["model_config"]
    assert config["name"] == name and config["recurrent"] is (name == "dfd_recurrent")
    assert meta["state_channels"] == config["hidden"] + 2
    checkpoint = torch.load(path.with_suffix(".pt"), map_location="cpu", weights_only=True)
    assert checkpoint["model_config"] == config, "the .onnx and the .pt beside it are different models"


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_matches_the_checkpoint_over_recurrent_steps(name, sweep):
    path = model_path(name)
    onnx_stream = DepthStream(path, backend="onnxruntime", backend_options={"threads": 1})
    torch_stream = DepthStream(path, backend="torch", backend_options={"device": "cpu", "threads": 1})
    assert torch_stream.backend.model_config == onnx_stream.backend.model_config
    got, want = run(onnx_stream, sweep), run(torch_stream, sweep)
    config = onnx_stream.backend.model_config
    for a, b in zip(got, want):
        assert a.shape == sweep[0].image.shape[:2]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        assert np.isfinite(a).mean() > 0.99, "almost every pixel has a depth"
        assert np.nanmax(np.abs(a - b)) < 1e-4  # metres (measured: about 4e-6)
        assert config["min_depth_m"] <= np.nanmin(a) and np.nanmax(a) <= config["max_depth_m"]
    assert np.nanstd(got[-1]) > 0.05, "depth varies over a textured scene"


@pytest.mark.parametrize("name", MODELS)
def test_only_the_recurrent_model_carries_a_state(name, sweep):
    """dfd_recurrent's state_out changes its next frame; dfd_single_frame returns a zero state."""
    backend = DepthStream(model_path(name), backend="onnxruntime", backend_options={"threads": 1}).backend
    image = np.ascontiguousarray(sweep[0].image.transpose(2, 0, 1)[None], np.float32) / 255.0
    lens = DepthStream.lens_input(sweep[0].lens, sweep[0].K[0, 0])
    first, _ = backend.infer(image, lens)
    second, _ = backend.infer(image, lens)
    state_norm = float(np.abs(backend._state).max())
    if name == "dfd_recurrent":
        assert state_norm > 0 and np.abs(second - first).max() > 1e-3
    else:
        assert state_norm == 0 and np.abs(second - first).max() == 0
