"""Demo without hardware: synthetic camera + depth node + RViz.

    ros2 launch dfd_depth_ros demo.launch.py
    ros2 launch dfd_depth_ros demo.launch.py rviz:=false backend:=onnxruntime

The synthetic camera renders a focus-sweep sequence at start-up (its size, length and rate
are in params_file, section synthetic_camera) and publishes it in a loop on
<camera>/image_raw, camera_info, lens_state and depth_gt; depth.launch.py does the rest
(depth/image, depth/camera_info, confidence/image, points; RViz in fixed_frame).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, SetEnvironmentVariable
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "dfd_depth_ros"


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)
    config = os.path.join(share, "config")
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="camera", description="namespace of the synthetic camera"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(config, "depth.yaml"),
                              description="YAML file with the parameters of both nodes"),
        DeclareLaunchArgument("model", default_value="", description="ONNX model file; empty: from params_file"),
        DeclareLaunchArgument("backend", default_value="", description="inference backend; empty: from params_file"),
        DeclareLaunchArgument("rviz", default_value="true", description="start RViz"),
        DeclareLaunchArgument("fixed_frame", default_value="camera_optical_frame",
                              description="RViz fixed frame: the synthetic camera's frame_id (params_file)"),
        DeclareLaunchArgument("fastdds_profile",
                              default_value=EnvironmentVariable(
                                  "FASTDDS_DEFAULT_PROFILES_FILE",
                                  default_value=os.path.join(config, "fastdds_profile.xml")),
                              description="Fast DDS XML profile for every process started here; default: "
                                          "FASTDDS_DEFAULT_PROFILES_FILE if set, else the shipped one"),
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
        Node(
            package=PACKAGE, executable="synthetic_camera", name="synthetic_camera",
            namespace=LaunchConfiguration("camera"), parameters=[LaunchConfiguration("params_file")],
            output="screen", emulate_tty=True,
        ),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(share, "launch", "depth.launch.py")),
            launch_arguments={
                "camera": LaunchConfiguration("camera"),
                "image_topic": "image_raw",
                "params_file": LaunchConfiguration("params_file"),
                "model": LaunchConfiguration("model"),
                "backend": LaunchConfiguration("backend"),
                "rviz": LaunchConfiguration("rviz"),
                "fixed_frame": LaunchConfiguration("fixed_frame"),
                "fastdds_profile": LaunchConfiguration("fastdds_profile"),
            }.items(),
        ),
    ])
