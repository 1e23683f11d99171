"""Launch files and shipped configs: every declared launch argument reaches a node or action (and nothing
uses an undeclared one), the executables they start exist, an existing FASTDDS_DEFAULT_PROFILES_FILE is kept,
the RViz config shows the image, the depth and the cloud, moved to any camera namespace and fixed frame, the
frame RViz starts in is the synthetic camera's, package.xml names every ROS package the code imports, and
the Fast DDS profile enlarges shared memory while keeping UDP.

`launch` / `launch_ros` are not installable in the venv (no wheels): the launch files are checked by
parsing them; where launch_ros imports (a ROS 2 install), the LaunchDescription is also built.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from dfd_depth_ros.frames import DEFAULT_FRAME_ID

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
CONFIG = REPO / "config"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Every call of ``name(...)`` or ``x.name(...)`` in the tree."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if called == name:
                out.append(node)
    return out


def _first_string(call: ast.Call, keyword: str = "name") -> str:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    for kw in call.keywords:
        if kw.arg == keyword and isinstance(kw.value, ast.Constant):
            return kw.value.value
    raise AssertionError(f"line {call.lineno}: the name must be a string literal, so that it can be checked")


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def declared_and_used(path: Path) -> tuple[set[str], set[str]]:
    tree = _parse(path)
    declared = [_first_string(c) for c in _calls(tree, "DeclareLaunchArgument")]
    assert len(declared) == len(set(declared)), f"{path.name}: an argument is declared twice"
    used = {_first_string(c, "variable_name") for c in _calls(tree, "LaunchConfiguration")}
    return set(declared), used


def test_there_are_launch_files():
    assert {p.name for p in LAUNCH_FILES} >= {"depth.launch.py", "demo.launch.py"}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_every_declared_argument_reaches_a_node_or_action(path):
    declared, used = declared_and_used(path)
    assert declared, f"{path.name} declares no arguments"
    assert not declared - used, f"{path.name}: declared but never passed on: {sorted(declared - used)}"
    assert not used - declared, f"{path.name}: used but never declared: {sorted(used - declared)}"


def _called_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
    return None


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_profile_is_set_before_any_process_starts(path):
    tree = _parse(path)
    (generate,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"]
    (description,) = _calls(generate, "LaunchDescription")
    actions = [_called_name(a) for a in description.args[0].elts]
    assert "SetEnvironmentVariable" in actions
    env = _first_string(description.args[0].elts[actions.index("SetEnvironmentVariable")])
    assert env == "FASTDDS_DEFAULT_PROFILES_FILE"
    starts = [i for i, a in enumerate(actions) if a in ("Node", "OpaqueFunction", "IncludeLaunchDescription")]
    assert starts and actions.index("SetEnvironmentVariable") < min(starts)


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_an_existing_profile_variable_is_kept(path):
    """The profile set is the fastdds_profile argument, whose default is the variable's current value (ours only
    when it is unset): a user's own profile is not replaced."""
    tree = _parse(path)
    (setter,) = _calls(tree, "SetEnvironmentVariable")
    value = setter.args[1]
    assert _called_name(value) == "LaunchConfiguration" and _first_string(value, "variable_name") == "fastdds_profile"
    (declared,) = [c for c in _calls(tree, "DeclareLaunchArgument") if _first_string(c) == "fastdds_profile"]
    default = next(k.value for k in declared.keywords if k.arg == "default_value")
    assert _called_name(default) == "EnvironmentVariable"
    assert ast.literal_eval(default.args[0]) == "FASTDDS_DEFAULT_PROFILES_FILE"
    assert any(k.arg == "default_value" and "fastdds_profile.xml" in ast.unparse(k.value) for k in default.keywords)


def test_depth_launch_arguments():
    declared, _ = declared_and_used(REPO / "launch" / "depth.launch.py")
    assert declared >= {"camera", "image_topic", "camera_info_topic", "lens_state_topic", "params_file", "model",
                        "backend", "use_sim_time", "rviz"}
    text = (REPO / "launch" / "depth.launch.py").read_text()
    for remap in ('("image",', '("camera_info",', '("lens_state",'):
        assert remap in text  # the node's input names, remapped to the arguments


def _package_executables(tree: ast.Module) -> set[str]:
    out = set()
    for call in _calls(tree, "Node"):
        kw = {k.arg: k.value for k in call.keywords}
        if isinstance(kw.get("package"), ast.Name) or (isinstance(kw.get("package"), ast.Constant)
                                                       and kw["package"].value == "dfd_depth_ros"):
            out.add(kw["executable"].value)
    return out


def test_started_executables_exist():
    """Every dfd_depth_ros executable a launch file starts is a console script with a main()."""
    scripts = dict(re.findall(r'"(\w+)\s*=\s*([\w.]+):main"', (REPO / "setup.py").read_text()))
    executables = set().union(*(_package_executables(_parse(p)) for p in LAUNCH_FILES))
    assert executables == {"depth_node", "synthetic_camera"}
    for exe in sorted(executables):
        module = f"dfd_depth_ros.nodes.{exe}"
        assert callable(getattr(importlib.import_module(module), "main", None)), module
        assert scripts.get(exe) == module, (
            f"setup.py console_scripts needs '{exe} = {module}:main' (launch files run it by that name)")


def test_shipped_configs_exist():
    for name in ("depth.yaml", "depth.rviz", "fastdds_profile.xml"):
        assert (CONFIG / name).is_file(), name


def _rviz_topics(cfg: dict) -> set[tuple[str, str]]:
    return {(d["Class"], d.get("Topic", {}).get("Value")) for d in cfg["Visualization Manager"]["Displays"]}


def test_rviz_shows_image_depth_and_cloud_in_the_optical_frame():
    cfg = yaml.safe_load((CONFIG / "depth.rviz").read_text())
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == DEFAULT_FRAME_ID
    displays = _rviz_topics(cfg)
    assert ("rviz_default_plugins/Image", "/camera/image_raw") in displays
    assert ("rviz_default_plugins/Image", "/camera/depth/image") in displays
    assert ("rviz_default_plugins/PointCloud2", "/camera/points") in displays


def _launch_function(name: str):
    """A pure function of depth.launch.py, without importing launch (not installable here)."""
    path = REPO / "launch" / "depth.launch.py"
    (func,) = [n for n in _parse(path).body if isinstance(n, ast.FunctionDef) and n.name == name]
    scope: dict = {}
    exec(compile(ast.Module(body=[func], type_ignores=[]), str(path), "exec"), scope)
    return scope[name]


@pytest.mark.parametrize("namespace, prefix", [("robot1/front", "/robot1/front"), ("/cam", "/cam"), ("", "")])
def test_rviz_config_follows_the_namespace_image_topic_and_frame(namespace, prefix):
    moved = _launch_function("namespaced_rviz_config")((CONFIG / "depth.rviz").read_text(), namespace,
                                                       "front_optical", image_topic="color/image")
    cfg = yaml.safe_load(moved)
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == "front_optical"
    assert _rviz_topics(cfg) >= {("rviz_default_plugins/Image", f"{prefix}/color/image"),
                                 ("rviz_default_plugins/Image", f"{prefix}/depth/image"),
                                 ("rviz_default_plugins/PointCloud2", f"{prefix}/points")}
    assert "/camera/" not in moved


def _launch_default(path: Path, argument: str) -> str:
    (call,) = [c for c in _calls(_parse(path), "DeclareLaunchArgument") if _first_string(c) == argument]
    return ast.literal_eval(next(k.value for k in call.keywords if k.arg == "default_value"))


def test_rviz_starts_in_the_frame_the_synthetic_camera_publishes():
    """What a demo user sees: the launch files' fixed frame is the frame_id of the shipped synthetic camera
    parameters and of the shipped RViz config (three separate literals that must agree)."""
    shipped = yaml.safe_load((CONFIG / "depth.yaml").read_text())
    frame_id = shipped["/**/synthetic_camera"]["ros__parameters"]["frame_id"]
    rviz = yaml.safe_load((CONFIG / "depth.rviz").read_text())["Visualization Manager"]["Global Options"]
    assert rviz["Fixed Frame"] == frame_id
    for path in LAUNCH_FILES:
        assert _launch_default(path, "fixed_frame") == frame_id, path.name


def test_package_xml_names_every_ros_package_the_code_imports():
    """Every ROS package (rclpy and message packages) and system Python module imported by the installed code
    is an exec_depend, so rosdep installs it."""
    root = ET.parse(REPO / "package.xml").getroot()
    depends = {e.text for e in root.iter("exec_depend")}
    imported = set()
    for path in list((REPO / "dfd_depth_ros").rglob("*.py")) + LAUNCH_FILES:
        for node in ast.walk(_parse(path)):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    ros = {m for m in imported if m.endswith(("_msgs", "_srvs", "_interfaces")) or m in (
        "rclpy", "launch", "launch_ros", "ament_index_python")}
    assert ros >= {"rclpy", "sensor_msgs", "rcl_interfaces", "builtin_interfaces"}
    assert ros <= depends, f"missing exec_depend: {sorted(ros - depends)}"
    system = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "tqdm": "python3-tqdm",
              "matplotlib": "python3-matplotlib", "skimage": "python3-skimage"}
    assert {system[m] for m in imported & system.keys()} <= depends


def test_fastdds_profile_enlarges_shared_memory_and_keeps_udp():
    root = ET.parse(CONFIG / "fastdds_profile.xml").getroot()
    ns = {"d": "http://www.eprosima.com"}
    assert root.tag == "{http://www.eprosima.com}dds"
    transports = {t.findtext("d:transport_id", namespaces=ns): t
                  for t in root.iterfind("d:profiles/d:transport_descriptors/d:transport_descriptor", ns)}
    kinds = {tid: t.findtext("d:type", namespaces=ns) for tid, t in transports.items()}
    assert sorted(kinds.values()) == ["SHM", "UDPv4"]
    shm = next(t for t in transports.values() if t.findtext("d:type", namespaces=ns) == "SHM")
    assert int(shm.findtext("d:segment_size", namespaces=ns)) >= 8 * 2**20  # a 640x480 cloud is ~5 MB
    (participant,) = root.iterfind("d:profiles/d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    rtps = participant.find("d:rtps", ns)
    assert rtps.findtext("d:useBuiltinTransports", namespaces=ns) == "false"
    used = [e.text for e in rtps.iterfind("d:userTransports/d:transport_id", ns)]
    assert sorted(used) == sorted(transports)


@pytest.mark.skipif(importlib.util.find_spec("launch_ros") is None,
                    reason="launch_ros is not installed (no PyPI wheel); needs a ROS 2 install")
@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_description_builds(path):  # pragma: no cover - runs on a ROS 2 install only
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert names == declared_and_used(path)[0]
