"""ONNX export: named I/O, explicit state, dynamic size, and parity with torch over a recurrent rollout."""

import json

import numpy as np
import pytest
import torch

from dfd_depth_ros.network import DfDNet, ModelConfig
from training.export import METADATA_KEY, export_onnx, onnx_parity

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module", params=["dfd_recurrent", "monocular"])
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    if request.param == "dfd_recurrent":
        cfg = ModelConfig(sharpness=True)
    else:
        cfg = ModelConfig(name="monocular", head="direct", sharpness=True)
    net = DfDNet(cfg).eval()
    path = export_onnx(net, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx", height=64, width=96)
    return net, path


def test_named_inputs_outputs_and_metadata(exported):
    net, path = exported
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image", "lens", "state"]
    assert [o.name for o in model.graph.output] == ["depth", "confidence", "state_out"]
    meta = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert meta["model_config"] == net.cfg.to_dict()
    assert meta["state_channels"] == net.cfg.hidden + 2


def test_onnxruntime_matches_torch_over_eight_steps(exported):
    net, path = exported
    assert onnx_parity(net, path, steps=8, height=96, width=128) <= 1e-4


def test_dynamic_size_and_state_carries(exported):
    """Another size than exported runs; a carried state changes the answer, a zero state reproduces it."""
    net, path = exported
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h, w = 120, 160
    image = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    lens = np.array([[6.0, 0.8]], np.float32)
    zero = np.zeros((1, net.cfg.hidden + 2, h // 8, w // 8), np.float32)
    d0, c0, s1 = sess.run(None, {"image": image, "lens": lens, "state": zero})
    assert d0.shape == (1, 1, h, w) and c0.shape == (1, 1, h, w) and s1.shape == zero.shape
    assert np.all(np.isfinite(d0)) and np.all((d0 >= net.cfg.min_depth_m - 1e-4) & (d0 <= net.cfg.max_depth_m + 1e-3))
    d1, _, _ = sess.run(None, {"image": image, "lens": lens, "state": s1})
    d0_again, _, _ = sess.run(None, {"image": image, "lens": lens, "state": zero})
    assert not np.allclose(d0, d1), "the recurrent state must influence the next frame"
    np.testing.assert_array_equal(d0, d0_again)
