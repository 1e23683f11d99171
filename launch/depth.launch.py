"""Depth from defocus for one camera: the depth node (and RViz on request).

    ros2 launch dfd_depth_ros depth.launch.py camera:=camera image_topic:=image_raw rviz:=true

The node runs in the camera's namespace, so it reads <camera>/<image_topic>,
<camera>/<camera_info_topic> and <camera>/<lens_state_topic>, and publishes the standard
depth-camera layout: <camera>/depth/image with <camera>/depth/camera_info, <camera>/confidence/image
with <camera>/confidence/camera_info, and <camera>/points. Parameters come from params_file;
model and backend, when given, override it. RViz shows the camera's topics whatever its namespace,
in fixed_frame (a copy of rviz_config with the topics and the frame filled in). Every process
started here loads a Fast DDS profile: FASTDDS_DEFAULT_PROFILES_FILE when it is already set,
else the shipped one (large shared-memory segment for images and clouds).
"""

import os
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dfd_depth_ros"


def _is_true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def namespaced_rviz_config(text: str, namespace: str, fixed_frame: str, image_topic: str = "image_raw") -> str:
    """The RViz config ``text`` (YAML) with its /camera/... topics moved to ``namespace`` (/camera/image_raw to
    its ``image_topic``) and its fixed frame set."""
    import yaml

    cfg = yaml.safe_load(text)
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    manager = cfg["Visualization Manager"]
    manager["Global Options"]["Fixed Frame"] = fixed_frame
    for display in manager["Displays"]:
        topic = display.get("Topic")
        if isinstance(topic, dict) and str(topic.get("Value", "")).startswith("/camera/"):
            name = topic["Value"][len("/camera/"):]
            topic["Value"] = f"{prefix}/{image_topic if name == 'image_raw' else name}"
    return yaml.safe_dump(cfg, sort_keys=False)


def _depth_node(context):
    """The depth node; model and backend override params_file only when they are not empty."""
    overrides = {"use_sim_time": _is_true(LaunchConfiguration("use_sim_time").perform(context))}
    model = LaunchConfiguration("model").perform(context)
    backend = LaunchConfiguration("backend").perform(context)
    if model:
        overrides["model_path"] = model
    if backend:
        overrides["backend"] = backend
    return [Node(
        package=PACKAGE, executable="depth_node", name="depth_node", namespace=LaunchConfiguration("camera"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
            ("lens_state", LaunchConfiguration("lens_state_topic")),
        ],
        output="screen", emulate_tty=True,
    )]


def _rviz(context):
    """RViz with a temporary copy of rviz_config whose topics are in the camera's namespace."""
    if not _is_true(LaunchConfiguration("rviz").perform(context)):
        return []
    with open(LaunchConfiguration("rviz_config").perform(context)) as f:
        text = namespaced_rviz_config(f.read(), LaunchConfiguration("camera").perform(context),
                                      LaunchConfiguration("fixed_frame").perform(context),
                                      LaunchConfiguration("image_topic").perform(context))
    with tempfile.NamedTemporaryFile("w", prefix="dfd_depth_", suffix=".rviz", delete=False) as out:
        out.write(text)
    return [Node(
        package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", out.name],
        parameters=[{"use_sim_time": _is_true(LaunchConfiguration("use_sim_time").perform(context))}],
        output="screen",
    )]


def generate_launch_description():
    config = os.path.join(get_package_share_directory(PACKAGE), "config")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="camera", description="namespace of the camera topics"),
        DeclareLaunchArgument("image_topic", default_value="image_raw",
                              description="camera image topic, relative to the namespace (rgb8, bgr8, mono8, ...)"),
        DeclareLaunchArgument("camera_info_topic", default_value="camera_info",
                              description="camera_info topic, relative to the namespace"),
        DeclareLaunchArgument("lens_state_topic", default_value="lens_state",
                              description="lens state topic (sensor_msgs/JointState), relative to the namespace"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(config, "depth.yaml"),
                              description="YAML file with the node parameters"),
        DeclareLaunchArgument("model", default_value="",
                              description="ONNX model file; empty: model_path from params_file (default model)"),
        DeclareLaunchArgument("backend", default_value="",
                              description="auto, onnxruntime, torch or tensorrt; empty: from params_file"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
        DeclareLaunchArgument("rviz", default_value="false", description="start RViz with rviz_config"),
        DeclareLaunchArgument("rviz_config", default_value=os.path.join(config, "depth.rviz"),
                              description="RViz configuration file (its /camera/... topics follow the camera "
                                          "namespace)"),
        DeclareLaunchArgument("fixed_frame", default_value="camera_optical_frame",
                              description="RViz fixed frame, e.g. the camera's optical frame"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=EnvironmentVariable(
                                  "FASTDDS_DEFAULT_PROFILES_FILE",
                                  default_value=os.path.join(config, "fastdds_profile.xml")),
                              description="Fast DDS XML profile for every process started here; default: "
                                          "FASTDDS_DEFAULT_PROFILES_FILE if set, else the shipped one"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
        OpaqueFunction(function=_depth_node),
        OpaqueFunction(function=_rviz),
    ])
