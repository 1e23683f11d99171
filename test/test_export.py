"""ONNX export: named I/O, explicit state, dynamic size, and parity with torch over a recurrent rollout."""

import json

import numpy as np
import pytest
import torch

from dfd_depth_ros.model_contract import (
    INPUT_NAMES,
    METADATA_KEY,
    OUTPUT_NAMES,
    ModelLoadError,
    parse_model_metadata,
    read_onnx_metadata,
)
from dfd_depth_ros.network import DfDNet, ModelConfig
from training.export import export_onnx, onnx_parity

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
    assert tuple(i.name for i in model.graph.input) == INPUT_NAMES == ("image", "lens", "state")
    assert tuple(o.name for o in model.graph.output) == OUTPUT_NAMES == ("depth", "confidence", "state_out")
    meta = json.loads({p.key: p.value for p in model.metadata_props}[METADATA_KEY])
    assert meta["model_config"] == net.cfg.to_dict()
    assert ModelConfig.from_dict(meta["model_config"]) == net.cfg  # the metadata rebuilds the same network
    # the channel count a runtime builds its zero state from is the one the graph takes and returns
    assert model.graph.input[2].type.tensor_type.shape.dim[1].dim_value == meta["state_channels"]
    zero = np.zeros((1, meta["state_channels"], 64 // 8, 96 // 8), np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    *_, state_out = sess.run(None, {"image": np.full((1, 3, 64, 96), 0.5, np.float32),
                                    "lens": np.array([[5.0, 0.5]], np.float32), "state": zero})
    assert state_out.shape == zero.shape


def test_contract_reader_matches_onnx_and_refuses_other_files(exported, tmp_path):
    """model_contract reads the metadata without the onnx package; bad files and bad metadata fail clearly."""
    _, path = exported
    want = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_onnx_metadata(path) == want
    assert parse_model_metadata(want[METADATA_KEY], path)["stride"] == 8
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        read_onnx_metadata(bad)
    with pytest.raises(ModelLoadError, match="no 'dfd_model_config'"):
        parse_model_metadata(None, path)
    with pytest.raises(ModelLoadError, match="stride 16"):
        parse_model_metadata(json.dumps({"model_config": {}, "stride": 16}), path)
    with pytest.raises(ModelLoadError, match="model_config"):
        parse_model_metadata(json.dumps({"state_channels": 18}), path)


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
    d1, _, _ = sess.run(None, {"image": image, "lens": lens, "state": s1})
    with torch.no_grad():  # the dynamic axes really are dynamic: at this size ONNX still computes what torch does
        t0, _, ts1 = net(torch.from_numpy(image), torch.from_numpy(lens), torch.from_numpy(zero))
        t1, _, _ = net(torch.from_numpy(image), torch.from_numpy(lens), ts1)
    assert max(float(np.abs(d0 - t0.numpy()).max()), float(np.abs(d1 - t1.numpy()).max())) < 1e-4
    d0_again, _, _ = sess.run(None, {"image": image, "lens": lens, "state": zero})
    assert not np.allclose(d0, d1), "the recurrent state must influence the next frame"
    np.testing.assert_array_equal(d0, d0_again)


def test_physics_export_writes_a_model_without_a_readout_and_its_card(tmp_path):
    """`training.export --physics`: the shipped kind of model, the evidence graph with its knobs and no weights."""
    from dfd_depth_ros.architectures import build_model
    from training.export import main

    out = tmp_path / "dfd_recurrent.onnx"
    assert main(["--physics", "--decay", "0.9", "--cost-window", "5", "--fill-full-conf", "0.05",
                 "--out", str(out), "--parity-steps", "2"]) == 0
    ckpt = torch.load(out.with_suffix(".pt"), map_location="cpu", weights_only=True)
    cfg = ckpt["model_config"]
    assert not cfg["learned"] and (cfg["decay"], cfg["cost_window_px"], cfg["fill_full_conf"]) == (0.9, 5, 0.05)
    build_model(cfg).load_state_dict(ckpt["model"], strict=True)
    card = out.with_suffix(".md").read_text()
    assert "no learned parameters" in card and "--physics --decay 0.9 --cost-window 5 --fill-full-conf 0.05" in card
    with pytest.raises(SystemExit):
        main(["--out", str(out)])  # neither a checkpoint nor --physics
