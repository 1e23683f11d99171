"""The shipped design: FocusEvidence (the classical reference's physics as a graph) and FocusVolumeNet around it.

The physics graph is checked against the independent numpy implementation (evaluation/focus_reference.py,
OpenCV filters) on disc-blurred plane scenes; the network against its own physics, its export and the runtime.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_focus_reference import FX, K, render

from dfd_depth_ros.evaluation.focus_reference import FocusReference
from dfd_depth_ros.evidence import FocusEvidence, falloff
from dfd_depth_ros.focus_volume_network import FocusVolumeConfig, FocusVolumeNet, warp_state
from dfd_depth_ros.optics import LensState


def _tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def _lens(lens: LensState) -> torch.Tensor:
    return torch.tensor([[lens.blur_scale_pxm(FX), lens.focus_diopters]], dtype=torch.float32)


def test_falloff_of_the_hypotheses_is_the_lens_model_through_the_calibrated_table():
    ev = FocusEvidence(torch.linspace(0.1, 4.0, 16))
    lens = LensState(0.8, 1.4, 0.05)
    c = lens.blur_diameter_px(1.0 / ev.w_k.numpy(), FX)
    got = ev.falloff(_lens(lens)[:, :1] * (ev.w_k[None] - _lens(lens)[:, 1:]))[0].numpy()
    np.testing.assert_allclose(got, falloff(c), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("knobs", [{}, {"decay": 0.9, "cost_window_px": 5, "fill_full_conf": 0.05}],
                         ids=["reference", "shipped-knobs"])
def test_physics_graph_matches_the_numpy_reference_frame_by_frame(knobs):
    """The graph is the classical reference, with its knobs or with the shipped model's (FocusVolumeConfig)."""
    ref = FocusReference(align=False, **knobs)
    ev = FocusEvidence(torch.from_numpy(ref.w_k), **knobs)
    if knobs:
        net_ev = FocusVolumeNet(FocusVolumeConfig(learned=False, **knobs)).evidence
        assert (net_ev.decay, net_ev.cost_window_px, net_ev.fill_full_conf) == (0.9, 5, 0.05)
    state = None
    for img, lens, stamp, _ in render(n=8):
        ref.process(img, K, lens, stamp, "cam")
        x = _tensor(img)
        with torch.no_grad():
            if state is None:
                state = torch.zeros(1, ev.channels(ref.w_k.size), x.shape[2] // 2, x.shape[3] // 2)
            measured, noise_var = ev.measure(x)
            state = ev.accumulate(state, measured, noise_var, _lens(lens))
            cost = ev.cost(state)
            est = ev.estimate(state, _lens(lens))
        cost_np = ref._cost()
        np.testing.assert_allclose(cost[0].permute(1, 2, 0).numpy(), cost_np, rtol=0, atol=1e-4 * cost_np.max())
        inv_np, conf_np = ref._estimate(lens.focus_diopters, lens.blur_scale_pxm(FX))
        assert np.mean(np.abs(est["inv_best"][0, 0].numpy() - inv_np) < 1e-3) > 0.999
        assert np.abs(est["conf"][0, 0].numpy() - conf_np).mean() < 1e-4


def test_untrained_model_is_its_physics_estimate_and_beats_the_floor():
    from dfd_depth_ros.evaluation.references import median_floor
    from dfd_depth_ros.metrics import frame_metrics

    net = FocusVolumeNet(FocusVolumeConfig()).eval()
    frames = list(render(n=16))
    state = net.initial_state(1, *frames[0][0].shape[:2])
    for img, lens, _, _ in frames:
        with torch.no_grad():
            out = net.forward_all(_tensor(img), _lens(lens), state)
        state = out["state"]
        torch.testing.assert_close(out["inv_depth_lo"], out["inv_filled"].clamp(1 / 20, 10))
    depth, gt = out["depth_m"][0, 0].numpy(), frames[-1][3]
    assert frame_metrics(depth, gt)["abs_rel"] < 0.6 * frame_metrics(median_floor(gt), gt)["abs_rel"]


def test_zero_state_is_a_reset_and_the_state_shape_follows_the_input():
    torch.manual_seed(0)
    net = FocusVolumeNet(FocusVolumeConfig(width=8)).eval()
    frames = [(_tensor(img), _lens(lens)) for img, lens, _, _ in render(n=4)]
    assert net.initial_state(1, 144, 192).shape == (1, net.state_channels, 72, 96)
    with torch.no_grad():
        first, _, state = net(*frames[-1], net.initial_state(1, 144, 192))  # the last frame, from nothing
        for x, lens in frames[:-1]:  # a history of other focus distances
            _, _, state = net(x, lens, state)
        carried, _, _ = net(*frames[-1], state)
        after_reset, _, _ = net(*frames[-1], torch.zeros_like(state))
    assert (carried - first).abs().max() > 1e-3  # the history changes the estimate ...
    torch.testing.assert_close(after_reset, first)  # ... and zeroing the state forgets all of it


def test_flow_shifts_the_evidence_and_content_coming_into_view_has_none():
    state = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6) + 1.0
    torch.testing.assert_close(warp_state(state, torch.zeros(1, 2, 4, 6)), state, atol=1e-5, rtol=0)
    flow = torch.zeros(1, 2, 4, 6)
    flow[:, 0] = 1.0  # current(x) = previous(x + 1): the scene moved one pixel left
    shifted = warp_state(state, flow)
    torch.testing.assert_close(shifted[..., :-1], state[..., 1:], atol=1e-5, rtol=0)
    assert float(shifted[..., -1].abs().max()) == 0.0


def test_two_focus_distances_resolve_front_from_back():
    """A plane at 0.6 m under focus 0.8 m blurs like one at about 1.2 m; a second focus tells them apart."""
    ev = FocusEvidence(torch.linspace(1 / 12, 4.0, 32))
    frames = list(render(n=24))
    state = None
    for img, lens, _, _ in frames:
        x = _tensor(img)
        if state is None:
            state = torch.zeros(1, ev.channels(32), x.shape[2] // 2, x.shape[3] // 2)
        with torch.no_grad():
            state = ev.accumulate(state, *ev.measure(x), _lens(lens))
    est = ev.estimate(state, _lens(lens))
    band = (frames[-1][3][::2, ::2] == 0.6) & (est["conf"][0, 0].numpy() > 0.2)
    assert band.sum() > 100
    assert abs(np.median(1.0 / est["inv_best"][0, 0].numpy()[band]) / 0.6 - 1) < 0.15


@pytest.mark.parametrize("flow_input", [False, True])
def test_onnx_export_with_dynamic_size_matches_torch(tmp_path, flow_input):
    pytest.importorskip("onnxruntime")
    from dfd_depth_ros.onnx_export import export_onnx, onnx_parity

    torch.manual_seed(0)
    # Both readout layouts: two full-resolution convolutions (top_width 0) and the lighter one (the shipped).
    net = FocusVolumeNet(FocusVolumeConfig(width=8, top_width=4 if flow_input else 0, flow_input=flow_input)).eval()
    for p in net.readout.out.parameters():
        p.data.normal_(0, 0.05)  # a readout that does something
    path = export_onnx(net, tmp_path / "fv.onnx", height=64, width=96)
    # Random noise frames read as far as the 20 m clamp; float32 rounding there is about 1e-5 of the depth.
    assert onnx_parity(net, path, steps=8, height=96, width=128) <= 1e-5 * net.cfg.max_depth_m


def test_depth_stream_feeds_flow_to_a_model_that_takes_it(tmp_path):
    pytest.importorskip("onnxruntime")
    from dfd_depth_ros.depth_stream import DepthStream
    from dfd_depth_ros.onnx_export import export_onnx

    net = FocusVolumeNet(FocusVolumeConfig(width=8, flow_input=True)).eval()
    path = export_onnx(net, tmp_path / "fv_flow.onnx", height=64, width=96)
    streams = {b: DepthStream(path, backend=b) for b in ("onnxruntime", "torch")}
    assert all(s.backend.takes_flow and s.flow_tracker is not None for s in streams.values())
    frames = list(render(n=8, shift_px_per_frame=2))  # a moving camera: real flows
    for img, lens, stamp, _ in frames:
        depth = {b: s.process(img, K, lens, stamp + 1, "cam").depth_m for b, s in streams.items()}
        # float32 rounding differs between the two runtimes and the fit's cost amplifies it (see
        # test_shipped_models): nearly every pixel agrees to 1e-4 m, a few near ties by less than 1 %.
        rel = np.abs(depth["onnxruntime"] - depth["torch"]) / depth["torch"]
        assert np.percentile(rel, 99) < 2e-4 and rel.max() < 1e-2
    assert np.isfinite(depth["onnxruntime"]).all()


def test_fixed_focus_gate_leaves_the_physics_estimate_until_the_focus_moves():
    torch.manual_seed(0)
    net = FocusVolumeNet(FocusVolumeConfig(width=8, fixed_focus_gate=True)).eval()
    for p in net.readout.out.parameters():
        p.data.normal_(0, 0.05)  # a readout that does something
    frames = list(render(n=8))
    state = net.initial_state(1, *frames[0][0].shape[:2])
    fixed = LensState(frames[0][1].focus_distance_m, frames[0][1].f_number, frames[0][1].focal_length_m)
    with torch.no_grad():
        for img, _, _, _ in frames[:4]:  # the focus stays where it was on the first frame
            out = net.forward_all(_tensor(img), _lens(fixed), state)
            state = out["state"]
        torch.testing.assert_close(out["inv_depth_lo"], out["inv_filled"].clamp(1 / 20, 10))
        state = net.initial_state(1, *frames[0][0].shape[:2])
        for img, lens, _, _ in frames:  # the sweep
            out = net.forward_all(_tensor(img), _lens(lens), state)
            state = out["state"]
    assert float((out["inv_depth_lo"] - out["inv_filled"]).abs().max()) > 1e-3


def test_the_readout_reads_the_same_from_cached_features_as_from_the_graph():
    """Training caches only the readout's input; what head() needs must come back from it unchanged."""
    torch.manual_seed(0)
    net = FocusVolumeNet(FocusVolumeConfig(width=8, fixed_focus_gate=True)).eval()
    for p in net.readout.out.parameters():
        p.data.normal_(0, 0.05)
    state = None
    for img, lens, _, _ in render(n=3):
        x = _tensor(img)
        state = net.initial_state(1, *x.shape[2:]) if state is None else state
        with torch.no_grad():
            est = net.physics(x, _lens(lens), state)
            state = est["state"]
    with torch.no_grad():
        direct = net.head(est, x.shape[2:])
        cached = net.head(net.estimate_from_features(est["features"]), x.shape[2:])
    torch.testing.assert_close(cached["inv_depth"], direct["inv_depth"], rtol=1e-5, atol=1e-6)


def test_the_monocular_baseline_ignores_the_lens_and_starts_from_no_estimate():
    """The ablation without lens input: two runs of the same frames under different lenses give the same depth."""
    torch.manual_seed(0)
    net = FocusVolumeNet(FocusVolumeConfig(width=8, lens_input=False)).eval()
    for p in net.readout.out.parameters():
        p.data.normal_(0, 0.05)
    frames = list(render(n=3))
    depths = []
    for scale in (1.0, 3.0):
        state = net.initial_state(1, *frames[0][0].shape[:2])
        with torch.no_grad():
            for img, lens, _, _ in frames:
                odd = LensState(lens.focus_distance_m * scale, lens.f_number * scale, lens.focal_length_m)
                depth, _, state = net(_tensor(img), _lens(odd), state)
        depths.append(depth)
    torch.testing.assert_close(depths[0], depths[1])
    with pytest.raises(ValueError, match="monocular"):
        FocusVolumeConfig(lens_input=False, readout_image="none")


def test_an_ensemble_reads_the_mean_of_its_members_residuals():
    """training.ensemble joins trained readouts; the joined graph's inverse depth is the physics fill plus the mean
    of the members' residuals, and an ensemble of one member's copies is that member."""
    from training.ensemble import join

    torch.manual_seed(0)
    cfg = FocusVolumeConfig(width=8, readout_image="none")
    members = []
    for _ in range(2):
        net = FocusVolumeNet(cfg).eval()
        for p in net.readout.out.parameters():
            p.data.normal_(0, 0.05)
        members.append(net)
    state = None
    for img, lens, _, _ in render(n=3):
        x = _tensor(img)
        state = members[0].initial_state(1, *x.shape[2:]) if state is None else state
        with torch.no_grad():
            est = members[0].physics(x, _lens(lens), state)
            state = est["state"]

    def ckpt(net):
        return {"model": net.state_dict(), "model_config": net.cfg.to_dict(), "train_config": {"name": "m"}}

    joined = FocusVolumeNet(FocusVolumeConfig.from_dict(join([ckpt(m) for m in members])["model_config"]))
    joined.load_state_dict(join([ckpt(m) for m in members])["model"])
    twin = FocusVolumeNet(FocusVolumeConfig.from_dict(join([ckpt(members[0])] * 3)["model_config"]))
    twin.load_state_dict(join([ckpt(members[0])] * 3)["model"])
    with torch.no_grad():
        outs = [m.eval().head(est, x.shape[2:])["inv_depth_lo"] for m in (*members, joined, twin)]
    torch.testing.assert_close(outs[2], (outs[0] + outs[1]) / 2, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outs[3], outs[0], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(outs[0], outs[1])
    other = FocusVolumeNet(FocusVolumeConfig(width=12, readout_image="none"))
    with pytest.raises(ValueError, match="width"):
        join([ckpt(members[0]), ckpt(other)])
