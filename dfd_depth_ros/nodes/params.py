"""ROS parameters from a frozen config dataclass, shared by depth_node and synthetic_camera.

Each field of a node's config is declared with ``ros_param(default, description, range,
choices, dynamic)``; ``declare_config`` declares them all as parameters with that description
and range (read-only unless ``dynamic``), reads the values (params file, ``-p``, launch,
overrides) and builds the config. Anything wrong (a type, a value out of range, a choice not
offered, a combination the config's ``__post_init__`` refuses) becomes one ``StartupError``
line for the user. At run time, rclpy refuses a read-only parameter, a wrong type or a value
out of range by itself; ``updated_config`` checks the rest (choices, combinations) for a node's
on-set-parameters callback. rclpy is imported only inside the functions that need it: the
config classes stay importable (and testable) without ROS.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import Field, field, fields

from dfd_depth_ros.errors import first_line


class StartupError(Exception):
    """The node cannot start (bad parameter, missing model); one line for the user."""


def ros_param(default, description: str, range=None, choices=None, dynamic: bool = False):
    """A config dataclass field that is also a ROS parameter: default, description, (lo, hi) range, choices.

    dynamic: the parameter may be changed while the node runs (``ros2 param set``); else read-only.
    """
    return field(default=default, metadata={"description": description, "range": range, "choices": choices,
                                            "dynamic": dynamic})


def check_choices(config) -> None:
    """StartupError if a field of a ros_param dataclass holds a value outside its choices."""
    for f in fields(config):
        choices, value = f.metadata.get("choices"), getattr(config, f.name)
        if choices and value not in choices:
            raise StartupError(f"parameter {f.name} = {value!r}: choose one of {', '.join(choices)}")


def parameter_descriptor(f: Field):
    """rcl_interfaces ParameterDescriptor of one ros_param field (description, range, choices; read-only
    unless the field is dynamic)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    dynamic = f.metadata.get("dynamic", False)
    desc = ParameterDescriptor(name=f.name, description=f.metadata["description"], read_only=not dynamic)
    if dynamic:
        desc.additional_constraints = "may be changed at run time"
    if f.metadata["choices"]:
        desc.additional_constraints = "; ".join(filter(None, ("one of: " + ", ".join(f.metadata["choices"]),
                                                              desc.additional_constraints)))
    lo_hi = f.metadata["range"]
    if lo_hi is not None and isinstance(f.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(lo_hi[0]), to_value=float(lo_hi[1]), step=0.0)]
    elif lo_hi is not None and isinstance(f.default, int) and not isinstance(f.default, bool):
        desc.integer_range = [IntegerRange(from_value=int(lo_hi[0]), to_value=int(lo_hi[1]), step=1)]
    return desc


def declare_config(node, config_cls):
    """Declare every field of ``config_cls`` as a parameter of ``node`` and build the config from the values.

    The values come from the parameter overrides (params file, -p, launch). StartupError with
    one line for a wrong type, a value out of range or a config that rejects the combination.
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values = {}
    for f in fields(config_cls):
        try:
            values[f.name] = node.declare_parameter(f.name, f.default, parameter_descriptor(f)).value
        except InvalidParameterTypeException as exc:
            raise StartupError(f"parameter {f.name}: {exc.args[0]} (write it like {f.default!r})") from None
        except InvalidParameterValueException as exc:
            lo, hi = f.metadata["range"]
            found = re.search(r"value \((.*?)\) for parameter", str(exc.args[0]))
            raise StartupError(f"parameter {f.name} = {found.group(1) if found else '?'} is out of range "
                               f"[{lo}, {hi}]") from None
    return config_cls(**values)


def updated_config(config, changes: dict):
    """``config`` with the parameter values ``changes`` (name -> value), or StartupError with the reason.

    For an on-set-parameters callback: names that are not fields of the config are left to
    others (rclpy's own parameters such as use_sim_time); a field that is not dynamic, a value of
    another type, a choice not offered or a combination the config refuses (min >= max) is an
    error whose text says why.
    """
    known = {f.name: f for f in fields(config)}
    mine = {name: value for name, value in changes.items() if name in known}
    for name, value in mine.items():
        f = known[name]
        if not f.metadata.get("dynamic", False):
            raise StartupError(f"parameter {name} is read-only (it is read once at start-up)")
        if type(value) is not type(f.default):
            raise StartupError(f"parameter {name} = {value!r}: write it like {f.default!r}")
        lo_hi = f.metadata["range"]
        if lo_hi is not None and not lo_hi[0] <= value <= lo_hi[1]:
            raise StartupError(f"parameter {name} = {value!r} is out of range [{lo_hi[0]}, {lo_hi[1]}]")
    return dataclasses.replace(config, **mine) if mine else config


def config_from_params_file(path, config_cls, node_name: str, namespace: str = "/"):
    """``config_cls`` as the node ``<namespace>/<node_name>`` would build it from the parameters file ``path``.

    For tools that must use a node's settings without running it (``dfd-depth eval-bag``). rcl
    reads the file, exactly as ``--ros-args --params-file`` does for the node (the same parser
    and node-name matching, ``/**/depth_node`` included), and ``declare_config`` declares the
    fields on a short-lived node of that name in its own context (no other node is affected;
    nothing is published). Parameters the file does not set keep the config's defaults.
    StartupError, one line naming the file, when rcl cannot read the file, a value is wrong, or
    the file sets none of the node's parameters (a section for another node name: surely a
    mistake for a tool that reads a file to get the node's settings).
    """
    import rclpy
    from rclpy import logging
    from rclpy.context import Context
    from rclpy.node import Node

    context = Context()
    rcl_level = logging.get_logger_level("rcl")
    try:
        logging.set_logger_level("rcl", logging.LoggingSeverity.FATAL)  # the exception says it all, in one line
        try:
            rclpy.init(args=["--ros-args", "--params-file", str(path)], context=context)
        except Exception as exc:  # RCLError: not YAML, not a parameters file, unreadable
            raise StartupError(f"cannot read {path}: {first_line(exc)}") from None
        finally:
            logging.set_logger_level("rcl", rcl_level)
        node = Node(node_name, namespace=namespace, context=context, start_parameter_services=False,
                    enable_rosout=False)
        try:
            from_file = getattr(node, "_parameter_overrides", None)  # rclpy: the file's values for this node
            if from_file is not None and not any(f.name in from_file for f in fields(config_cls)):
                raise StartupError(f"{path} has no parameters for {node.get_fully_qualified_name()} (write them "
                                   f"under /**/{node_name}: ros__parameters:)")
            try:
                return declare_config(node, config_cls)
            except StartupError as exc:
                raise StartupError(f"{path}: {exc}") from None
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
