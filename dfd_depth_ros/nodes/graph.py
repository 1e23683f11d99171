"""Starting a node graph in this process without ``ros2 launch``: what `dfd-depth run`, `demo` and `eval-bag` share.

    use_dds_profile()                     # the shipped Fast DDS profile, unless the user set one
    init_with_params(Path("config/depth.yaml"))
    node = DepthNode(namespace="camera", parameter_overrides=overrides(model_path="m.onnx"))
    ...
    shutdown()
"""

from __future__ import annotations

import os
import sys
import time
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


def spin_nodes(nodes, threads: int = 2, until=None, linger_s: float = 0.0) -> None:
    """Spin ``nodes`` on one multi-threaded executor, then destroy them and shut rclpy down.

    The executor gets at least the sum of the nodes' ``executor_threads`` (1 for a node without),
    so a depth node's frame, lens and side callbacks never wait for a free thread.

    Runs until shutdown or Ctrl-C, or, with ``until`` (a callable), until it returns True and
    ``linger_s`` more seconds have passed (time for the last messages to be handled).
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    threads = max(threads, sum(getattr(node, "executor_threads", 1) for node in nodes))
    executor = MultiThreadedExecutor(num_threads=threads)
    for node in nodes:
        executor.add_node(node)
    try:
        if until is None:
            executor.spin()
        else:
            while rclpy.ok() and not until():
                executor.spin_once(timeout_sec=0.1)
            deadline = time.monotonic() + linger_s
            while rclpy.ok() and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def run_node(node_class, name: str, argv: list[str] | None = None, spin_options: dict | None = None,
             after=None) -> int:
    """A node's console script: init rclpy with ``argv`` (``--ros-args ...``), build the node, spin it.

    Returns 0 after a shutdown, 2 with one line on stderr when rclpy or the node cannot start.
    ``spin_options``: keyword options of ``spin_nodes``, each a callable of the node (e.g.
    {"until": lambda node: node.is_done}); ``after(node)`` runs once spinning has ended.
    """
    import rclpy

    try:
        rclpy.init(args=sys.argv if argv is None else argv)
    except Exception as exc:  # bad --ros-args (unreadable params file, bad remap): rcl says why
        print(f"{name}: error: {first_line(exc)}", file=sys.stderr)
        return 2
    try:
        node = node_class()
    except StartupError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    spin_nodes([node], **{k: f(node) for k, f in (spin_options or {}).items()})
    if after is not None:
        after(node)
    return 0
