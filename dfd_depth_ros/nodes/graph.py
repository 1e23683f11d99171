"""Starting a node graph in this process without ``ros2 launch``: what `dfd-depth run`, `demo` and `eval-bag` share.

    use_dds_profile()                     # the shipped Fast DDS profile, unless the user set one
    init_with_params(Path("config/depth.yaml"))
    node = DepthNode(namespace="camera", parameter_overrides=overrides(model_path="m.onnx"))
    ...
    shutdown()
"""

from __future__ import annotations

import os
from pathlib import Path

from dfd_depth_ros.errors import first_line
from dfd_depth_ros.nodes.params import StartupError
from dfd_depth_ros.package_paths import config_file

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def use_dds_profile() -> None:
    """Point Fast DDS at the shipped profile (a larger shared-memory segment) unless a profile is already set.

    A robot's own profile (a discovery server, say) always wins. Read by Fast DDS when rclpy creates
    its participant, so call this before ``init_with_params``.
    """
    profile = config_file("fastdds_profile.xml")
    if not os.environ.get(PROFILE_ENV) and profile.is_file():
        os.environ[PROFILE_ENV] = str(profile)


def init_with_params(params_file: Path | None = None, program: str = "dfd-depth") -> None:
    """rclpy.init with a parameters file (every node of this process reads it); StartupError with one line."""
    import rclpy

    args = [program] if params_file is None else [program, "--ros-args", "--params-file", str(params_file)]
    try:
        rclpy.init(args=args)
    except Exception as exc:  # RCLError: unreadable or not a parameters file
        raise StartupError(f"cannot read {params_file}: {first_line(exc)}") from None


def overrides(**values) -> list:
    """rclpy Parameters of plain Python values (their types from the values), for ``parameter_overrides``."""
    from rclpy.parameter import Parameter

    return [Parameter(name, value=value) for name, value in values.items() if value is not None]


def remap_args(remaps: dict[str, str]) -> list[str]:
    """``cli_args`` of a node that renames its topics: {"image": "image_raw"} -> ["--ros-args", "-r", ...]."""
    return ["--ros-args"] + [a for k, v in remaps.items() for a in ("-r", f"{k}:={v}")]


def is_valid_namespace(namespace: str) -> bool:
    """Whether ``namespace`` is a valid absolute ROS namespace."""
    from rclpy.validate_namespace import validate_namespace

    try:
        validate_namespace(namespace)
    except Exception:  # InvalidNamespaceException
        return False
    return True


def ok() -> bool:
    """False once ROS has shut down (Ctrl-C)."""
    import rclpy

    return rclpy.ok()


def shutdown() -> None:
    import rclpy

    rclpy.try_shutdown()
