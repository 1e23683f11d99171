"""eval-bag and eval-bags on small generated bags: the contract's metrics.json (finite, the same on a second run
and in either storage), the report and plots a user reads, frames without a lens state skipped and counted,
every broken-bag case as one line with a non-zero exit, the input bag never modified, and the several-bag
summary (frame-weighted). The model is an untrained DfDNet (its numbers mean nothing; their form does)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfd_depth_ros.evaluation import bagio
from dfd_depth_ros.evaluation.evaluate import (
    CONTRACT_KEYS,
    MethodOptions,
    aggregate_metrics,
    build_methods,
    evaluate_bag,
)
from dfd_depth_ros.msgs.convert import stamp_to_ns

FRAMES = 6
METHODS = ["dfd_recurrent", "dfd_single_frame", "depth_from_focus", "classical_dfd"]
REFERENCES = ["median_floor", "blur_oracle"]


def dfd(*argv: str) -> int:
    """`dfd-depth ARGV` through the real entry point, in this process: cli.main's exit code (errors: 2)."""
    from dfd_depth_ros import cli

    return cli.main(list(argv))


def digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """An untrained recurrent model and, beside it, an untrained single-frame one; returns the recurrent path."""
    import torch

    from dfd_depth_ros.network import DfDNet, ModelConfig
    from training.export import export_onnx

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    export_onnx(DfDNet(ModelConfig(name="dfd_single_frame", recurrent=False, widths=(8, 8, 8), hidden=8)),
                folder / "dfd_single_frame.onnx", height=48, width=64)
    return export_onnx(DfDNet(ModelConfig(widths=(8, 8, 8), hidden=8)), folder / "untrained.onnx", height=48, width=64)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> dict[str, Path]:
    """The same 64x48 six-frame focus sweep as an mcap and as a sqlite3 bag."""
    from dfd_depth_ros.synthetic.sequences import SequenceConfig, generate_sequence

    seq = generate_sequence(SequenceConfig(width_px=64, height_px=48, num_frames=FRAMES, seed=3, noise=False))
    folder = tmp_path_factory.mktemp("bags")
    return {s: bagio.write_sequence_bag(seq, folder / f"sweep_{s}", storage=s) for s in ("mcap", "sqlite3")}


def rewrite(src: Path, dst: Path, edit) -> Path:
    """Copy a bag message by message through ``edit(topic, msgtype, msg) -> [(topic, msgtype, msg), ...]`` (mcap)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = bagio.typestore()
    conns: dict = {}
    with bagio.open_bag(src) as reader, Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for conn, log_ns, raw in reader.messages():
            for topic, msgtype, msg in edit(conn.topic, conn.msgtype, ts.deserialize_cdr(raw, conn.msgtype)):
                if (topic, msgtype) not in conns:
                    conns[topic, msgtype] = writer.add_connection(topic, msgtype, typestore=ts)
                writer.write(conns[topic, msgtype], log_ns, ts.serialize_cdr(msg, msgtype))
    return dst


def finite(doc: dict, method: str) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in doc["methods"][method].values())


def numbers(doc: dict) -> dict:
    """metrics.json without the timings (which differ from run to run)."""
    return {m: {k: v for k, v in values.items() if k != "ms_per_frame"} for m, values in doc["methods"].items()}


# ----------------------------------------------------------------------------- eval-bag


def test_eval_bag_writes_metrics_report_and_plots_deterministically(bags, models, tmp_path, capsys):
    bag = bags["mcap"]
    before = digest(bag)
    out = tmp_path / "eval"
    assert dfd("eval-bag", str(bag), "--out", str(out), "--model", str(models), "--backend", "onnxruntime",
               "--baselines") == 0
    assert digest(bag) == before, "eval-bag must not modify the input bag"
    doc = json.loads((out / "metrics.json").read_text())
    assert {"bag", "frames", "methods"} <= set(doc)  # the contract's keys; the project may add its own
    assert doc["bag"] == "sweep_mcap" and doc["frames"] == FRAMES
    assert list(doc["methods"]) == METHODS
    assert list(doc["references"]) == REFERENCES  # they read the ground truth: kept apart from the methods
    assert finite(doc, "classical_dfd") and doc["methods"]["classical_dfd"]["missing"] < 0.05  # dense
    for name, m in doc["methods"].items():
        assert tuple(m) == CONTRACT_KEYS and m["frames"] == FRAMES, name
        assert 0 <= m["delta1"] <= m["delta2"] <= m["delta3"] <= 1 and 0 <= m["missing"] <= 1, name
    assert finite(doc, "dfd_recurrent") and finite(doc, "dfd_single_frame")
    assert doc["methods"]["depth_from_focus"]["missing"] > 0  # it needs a few focus settings before it answers

    report = (out / "report.md").read_text()
    for text in ("| dfd_recurrent |", "| dfd_single_frame |", "| depth_from_focus |", "focus distance [m]",
                 "f-number", "focal length [mm]", "Blur diameter of the ground truth", "skipped: no lens state",
                 "dfd_recurrent: 1 (start 1); at frames #0 start", "state zeroed before every frame"):
        assert text in report, text
    for png in ("error_vs_frame.png", "error_vs_depth.png", "error_vs_blur.png", "strip.png"):
        image = cv2.imread(str(out / png))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 300, png
        assert f"]({png})" in report
    assert "dfd_recurrent" in capsys.readouterr().out

    again = tmp_path / "again"
    assert dfd("eval-bag", str(bag), "--out", str(again), "--model", str(models), "--backend", "onnxruntime",
               "--baselines", "--no-plots") == 0
    assert numbers(json.loads((again / "metrics.json").read_text())) == numbers(doc)  # bit for bit
    assert sorted(p.name for p in again.iterdir()) == ["metrics.json", "report.md"]


def test_sqlite3_bag_gives_the_same_numbers_as_mcap(bags, models):
    methods, _ = build_methods(MethodOptions(model=models, backend="onnxruntime"))
    before = digest(bags["sqlite3"])
    mcap, sqlite = (evaluate_bag(bags[s], methods).metrics_json() for s in ("mcap", "sqlite3"))
    assert digest(bags["sqlite3"]) == before
    assert numbers(sqlite) == numbers(mcap) and finite(sqlite, "dfd_recurrent")
    assert sqlite["bag"] == "sweep_sqlite3"


def test_without_a_single_frame_model_the_model_itself_runs_memoryless(bags, models, tmp_path):
    lone = tmp_path / "lone" / "recurrent.onnx"
    lone.parent.mkdir()
    lone.write_bytes(models.read_bytes())  # no dfd_single_frame.onnx beside this one
    out = tmp_path / "eval"
    assert dfd("eval-bag", str(bags["mcap"]), "--out", str(out), "--model", str(lone), "--backend", "onnxruntime",
               "--baselines", "--no-plots") == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["methods"]) == ["dfd_recurrent", "dfd_single_frame", "depth_from_focus", "classical_dfd"]
    assert f"{lone}, dfd_recurrent, onnxruntime on cpu, state zeroed before every frame" in (
        out / "report.md").read_text()
    assert doc["methods"]["dfd_single_frame"]["abs_rel"] != doc["methods"]["dfd_recurrent"]["abs_rel"]


def test_a_monocular_model_beside_the_model_adds_its_row(bags, models, tmp_path):
    """The lens ablation: monocular.onnx beside the model is a method of --baselines, run through DepthStream."""
    import torch

    from dfd_depth_ros.focus_volume_network import FocusVolumeConfig, FocusVolumeNet
    from training.export import export_onnx

    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "recurrent.onnx").write_bytes(models.read_bytes())
    torch.manual_seed(0)
    mono = FocusVolumeNet(FocusVolumeConfig(name="monocular", width=8, lens_input=False, flow_input=True))
    export_onnx(mono, folder / "monocular.onnx", height=48, width=64)
    out = tmp_path / "eval"
    assert dfd("eval-bag", str(bags["mcap"]), "--out", str(out), "--model", str(folder / "recurrent.onnx"),
               "--backend", "onnxruntime", "--baselines", "--no-plots") == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["methods"]) == ["dfd_recurrent", "dfd_single_frame", "monocular", "depth_from_focus",
                                    "classical_dfd"]
    assert finite(doc, "monocular")
    assert "monocular.onnx, monocular, onnxruntime on cpu, no lens input" in (out / "report.md").read_text()


def test_frames_without_lens_state_are_skipped_and_counted(bags, models, tmp_path):
    stamps = [f.stamp_ns for f in bagio.iter_bag_frames(bags["mcap"])]

    def drop_late_lens(topic, msgtype, msg):  # lens samples stop after frame 2; frame 3 is within 50 ms of it
        late = topic == "/camera/lens_state" and stamp_to_ns(msg.header.stamp) > stamps[2]
        return [] if late else [(topic, msgtype, msg)]

    bag = rewrite(bags["mcap"], tmp_path / "late_lens", drop_late_lens)
    out = tmp_path / "eval"
    assert dfd("eval-bag", str(bag), "--out", str(out), "--model", str(models), "--backend", "onnxruntime",
               "--no-plots") == 0
    assert json.loads((out / "metrics.json").read_text())["frames"] == FRAMES - 2
    report = (out / "report.md").read_text()
    assert "| skipped: no lens state at the image stamp (interpolated, or nearest within 0.05 s) | 2 |" in report
    assert f"{FRAMES - 2} of {FRAMES} image messages evaluated" in report


def test_only_the_given_stamps_are_evaluated(bags, models):
    methods, _ = build_methods(MethodOptions(model=models, backend="onnxruntime"))
    stamps = [f.stamp_ns for f in bagio.iter_bag_frames(bags["mcap"])]
    result = evaluate_bag(bags["mcap"], methods, stamps=set(stamps[:2] + stamps[3:]))
    assert result.scored_frames == FRAMES - 1 and result.excluded_frames == 1
    assert [f.stamp_ns for f in result.frames] == stamps[:2] + stamps[3:]


# ----------------------------------------------------------------------------- the node's parameters


def params_file(path: Path, **depth_node) -> Path:
    """The shipped config/depth.yaml with some depth_node parameters changed."""
    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "depth.yaml").read_text())
    params["/**/depth_node"]["ros__parameters"].update(depth_node)
    path.write_text(yaml.safe_dump(params))
    return path


def test_params_file_settings_reach_the_estimator(bags, models, tmp_path, capsys):
    base = [str(bags["mcap"]), "--model", str(models), "--backend", "onnxruntime", "--no-plots"]
    assert dfd("eval-bag", *base, "--out", str(tmp_path / "default")) == 0
    shipped = Path(__file__).resolve().parents[1] / "config" / "depth.yaml"
    assert f"note: depth settings from {shipped} (/camera/depth_node): max_gap_periods 5, min_depth_m 0.1, " \
           "max_depth_m 20, min_confidence 0, lens_tolerance_s 0.05; --model, --backend from the command line" in (
               capsys.readouterr().out)
    # The node's min_confidence (and a model_path that --model overrides) from the file.
    tuned = params_file(tmp_path / "tuned.yaml", min_confidence=0.5, model_path="/nonexistent/dfd.onnx")
    assert dfd("eval-bag", *base, "--out", str(tmp_path / "tuned"), "--params-file", str(tuned)) == 0
    default, confident = (json.loads((tmp_path / d / "metrics.json").read_text())["methods"]["dfd_recurrent"]
                          for d in ("default", "tuned"))
    assert confident["missing"] > default["missing"] and confident["abs_rel"] != default["abs_rel"]
    assert confident["frames"] == default["frames"] == FRAMES
    assert f"note: depth settings from {tuned} (/camera/depth_node): max_gap_periods 5, min_depth_m 0.1, " \
           "max_depth_m 20, min_confidence 0.5" in (tmp_path / "tuned" / "report.md").read_text()
    # Without --model, the file's model_path is the model.
    assert dfd("eval-bag", str(bags["mcap"]), "--out", str(tmp_path / "o"), "--params-file", str(tuned)) == 2
    assert "no model at /nonexistent/dfd.onnx" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_stream_options_are_what_the_node_gives_its_depth_stream(monkeypatch):
    from dfd_depth_ros import depth_stream as core
    from dfd_depth_ros.nodes.depth_inputs import open_depth_stream
    from dfd_depth_ros.nodes.depth_node import DepthNodeConfig

    seen = {}
    monkeypatch.setattr(core, "DepthStream", lambda **kwargs: seen.update(kwargs))
    cfg = DepthNodeConfig(max_gap_periods=7.0, min_depth_m=0.3, max_depth_m=9.0, min_confidence=0.2)
    open_depth_stream(cfg)
    # The same settings, except that the node's stream leaves the depth range open: the node applies it when it
    # publishes (+-Inf, REP 117), to the same finite pixels (test_ros_msgs checks that).
    expected = {**cfg.stream_options(), "min_depth_m": 0.0, "max_depth_m": math.inf}
    assert {k: v for k, v in seen.items() if k not in ("model_path", "backend")} == expected


@pytest.mark.parametrize("write, expected", [
    (None, r"parameters file \S*missing\.yaml does not exist"),
    ("/**/depth_node: [1, 2\n", r"cannot read \S*bad\.yaml: .*parse params file"),
    ("/camera/synthetic_camera:\n  ros__parameters:\n    width: 64\n",
     r"bad\.yaml has no parameters for /camera/depth_node \(write them under /\*\*/depth_node: ros__parameters:\)"),
    ({"max_depth_m": 20}, r"bad\.yaml: parameter max_depth_m: .*INTEGER.*\(write it like 20\.0\)"),
    ({"min_confidence": 2.0}, r"bad\.yaml: parameter min_confidence = 2\.0 is out of range \[0\.0, 1\.0\]"),
    ({"min_depth_m": 5.0, "max_depth_m": 1.0}, r"bad\.yaml: min_depth_m \(5\.0\) must be smaller than max_depth_m"),
], ids=["missing", "not_a_params_file", "not_for_depth_node", "wrong_type", "out_of_range", "inconsistent"])
def test_bad_params_file_is_one_line_and_nothing_is_written(bags, models, tmp_path, capsys, write, expected):
    import re

    path = tmp_path / ("missing.yaml" if write is None else "bad.yaml")
    if isinstance(write, str):
        path.write_text(write)
    elif write is not None:
        params_file(path, **write)
    for command, bag in (("eval-bag", bags["mcap"]), ("eval-bags", bags["mcap"].parent)):
        capsys.readouterr()
        out = tmp_path / command
        assert dfd(command, str(bag), "--out", str(out), "--model", str(models), "--params-file", str(path)) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"dfd-depth {command}: error: ") and "\n" not in err and "Traceback" not in err, err
        assert re.search(expected, err), err
        assert not out.exists()


# ----------------------------------------------------------------------------- broken bags


def _drop(name):
    return lambda topic, msgtype, msg: [] if topic == name else [(topic, msgtype, msg)]


def _lens_as_camera_info(topic, msgtype, msg):
    if topic == "/camera/lens_state":
        return []
    if topic == "/camera/camera_info":
        return [(topic, msgtype, msg), ("/camera/lens_state", msgtype, msg)]
    return [(topic, msgtype, msg)]


def _yuv(topic, msgtype, msg):
    if topic == "/camera/image_raw":
        msg.encoding = "yuv422"
    return [(topic, msgtype, msg)]


def _unusable_lens(topic, msgtype, msg):
    if topic == "/camera/lens_state":
        msg.name = ["focus", "aperture", "zoom"]
    return [(topic, msgtype, msg)]


@pytest.mark.parametrize("case, edit, expected", [
    ("no_lens_topic", _drop("/camera/lens_state"),
     r"no lens_state topic '/camera/lens_state' \(sensor_msgs/msg/JointState\); its topics: "
     r"/camera/camera_info \[sensor_msgs/msg/CameraInfo\], /camera/depth_gt \[sensor_msgs/msg/Image\], "
     r"/camera/image_raw \[sensor_msgs/msg/Image\]"),
    ("no_ground_truth", _drop("/camera/depth_gt"), r"no depth_gt topic '/camera/depth_gt'"),
    ("wrong_type", _lens_as_camera_info,
     r"topic '/camera/lens_state' has type sensor_msgs/msg/CameraInfo, expected sensor_msgs/msg/JointState"),
    ("yuv422", _yuv, r"/camera/image_raw at stamp \d+ ns: unsupported image encoding 'yuv422'"),
    ("unusable_lens", _unusable_lens, r"no frame has a usable lens state \(6 frames skipped; 6 lens samples, 6 "),
    ("truncated", None, r"cannot read bag .*: it is corrupt or truncated"),
], ids=["no_lens_topic", "no_ground_truth", "wrong_type", "yuv422", "unusable_lens", "truncated"])
def test_broken_bag_is_one_line_and_nothing_is_written(bags, models, tmp_path, capsys, case, edit, expected):
    import re

    if edit is None:
        bag = tmp_path / case
        bag.mkdir()
        for f in bags["mcap"].iterdir():
            (bag / f.name).write_bytes(f.read_bytes()[: f.stat().st_size // 2] if f.suffix == ".mcap" else
                                       f.read_bytes())
    else:
        bag = rewrite(bags["mcap"], tmp_path / case, edit)
    before = digest(bag)
    out = tmp_path / "eval"
    capsys.readouterr()
    assert dfd("eval-bag", str(bag), "--out", str(out), "--model", str(models), "--backend", "onnxruntime") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dfd-depth eval-bag: error: ") and "\n" not in err and "Traceback" not in err, err
    assert re.search(expected, err), err
    assert not out.exists() and digest(bag) == before


def test_bad_paths_and_outputs_are_refused(bags, models, tmp_path, capsys):
    base = ["--model", str(models), "--backend", "onnxruntime"]
    assert dfd("eval-bag", str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), *base) == 2
    assert "no such file or folder" in capsys.readouterr().err
    before = digest(bags["mcap"])
    assert dfd("eval-bag", str(bags["mcap"]), "--out", str(bags["mcap"] / "eval"), *base) == 2
    assert "is inside the bag" in capsys.readouterr().err and digest(bags["mcap"]) == before
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert dfd("eval-bag", str(bags["mcap"]), "--out", str(tmp_path / "full"), *base) == 2
    assert "not empty" in capsys.readouterr().err
    assert dfd("eval-bag", str(bags["mcap"]), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "no.onnx")) == 2
    assert "no model at" in capsys.readouterr().err


# ----------------------------------------------------------------------------- eval-bags


def _copy_bags(bags: dict[str, Path], folder: Path) -> Path:
    """The test bags copied side by side into ``folder`` (a folder of bags, as eval-bags takes it)."""
    folder.mkdir()
    for bag in bags.values():
        (folder / bag.name).mkdir()
        for f in bag.iterdir():
            (folder / bag.name / f.name).write_bytes(f.read_bytes())
    return folder


def test_eval_bags_resume_keeps_bags_done_and_redoes_a_changed_one(bags, models, tmp_path, capsys):
    folder = _copy_bags(bags, tmp_path / "bags")
    out = tmp_path / "summary"
    args = ("eval-bags", str(folder), "--out", str(out), "--model", str(models), "--backend", "onnxruntime",
            "--no-plots")
    assert dfd(*args) == 0
    first = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    (folder / "sweep_sqlite3" / "metadata.yaml").touch()  # this bag changed since its evaluation
    assert dfd(*args, "--resume") == 0
    printed = capsys.readouterr().out
    assert "sweep_mcap: kept" in printed and "sweep_sqlite3: kept" not in printed
    again = json.loads((out / "summary.json").read_text())["overall"]["methods"]["dfd_recurrent"]
    before = first["overall"]["methods"]["dfd_recurrent"]
    assert {k: v for k, v in again.items() if k != "ms_per_frame"} == {
        k: v for k, v in before.items() if k != "ms_per_frame"}  # the same depth, timed anew for one bag


def test_eval_bags_summarises_per_bag_and_overall(bags, models, tmp_path, capsys):
    folder = _copy_bags(bags, tmp_path / "bags")
    rewrite(bags["mcap"], folder / "z_broken", _drop("/camera/depth_gt"))
    out = tmp_path / "summary"
    code = dfd("eval-bags", str(folder), "--out", str(out), "--model", str(models), "--backend", "onnxruntime",
               "--no-plots")
    assert code == 1 and "1 of 3 bags failed" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert [b["bag"] for b in summary["bags"]] == ["sweep_mcap", "sweep_sqlite3"]
    assert summary["failed"][0]["bag"].endswith("z_broken") and "no depth_gt topic" in summary["failed"][0]["error"]
    overall = summary["overall"]["methods"]["dfd_recurrent"]
    one = summary["bags"][0]["methods"]["dfd_recurrent"]
    assert overall["frames"] == 2 * FRAMES and summary["overall"]["frames"] == 2 * FRAMES
    assert overall["abs_rel"] == pytest.approx(one["abs_rel"])  # two copies of one bag
    for name in ("sweep_mcap", "sweep_sqlite3"):
        assert json.loads((out / name / "metrics.json").read_text())["frames"] == FRAMES
    md = (out / "summary.md").read_text()
    assert "| **overall** | dfd_recurrent |" in md and "[sweep_sqlite3](sweep_sqlite3/report.md)" in md
    assert "z_broken" in md

    glob_out = tmp_path / "glob"
    assert dfd("eval-bags", str(folder / "sweep_*"), "--out", str(glob_out), "--model", str(models),
               "--backend", "onnxruntime", "--no-plots") == 0
    assert len(json.loads((glob_out / "summary.json").read_text())["bags"]) == 2


def test_aggregate_is_frame_weighted_and_skips_undefined_values():
    def doc(frames, abs_rel, flicker):
        m = dict.fromkeys(CONTRACT_KEYS, 0.5) | {"frames": frames, "abs_rel": abs_rel, "flicker": flicker}
        return {"bag": "b", "frames": frames, "methods": {"dfd_recurrent": m}}

    agg = aggregate_metrics([doc(10, 0.1, None), doc(30, 0.5, 0.2)])["dfd_recurrent"]
    assert agg["frames"] == 40 and agg["abs_rel"] == pytest.approx(0.4) and agg["flicker"] == pytest.approx(0.2)
    assert np.isclose(agg["delta1"], 0.5)
