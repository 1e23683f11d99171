"""Where the package's files live: the shipped model, the shipped configuration and the TensorRT engine cache.

The model is looked up in the installed share folder first (colcon / ``pip install .``:
``share/dfd_depth_ros/models/``, found through ament_index when it is importable and knows
the package), then in the source tree (``<repo>/models``).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_NAME = "dfd_depth_ros"
DEFAULT_MODEL_FILE = "dfd_recurrent.onnx"
CACHE_ENV = "DFD_DEPTH_ROS_CACHE_DIR"  # overrides the cache root (engines go in <root>/engines)


def share_dir() -> Path | None:
    """The installed share folder of the package, or None when ament_index does not know it."""
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE_NAME))
    except Exception:  # PackageNotFoundError, or EnvironmentError without AMENT_PREFIX_PATH
        return None


def config_file(name: str) -> Path:
    """config/<name> from the installed share folder if it is there, else from the source tree."""
    share = share_dir()
    if share is not None and (share / "config" / name).is_file():
        return share / "config" / name
    return Path(__file__).resolve().parents[1] / "config" / name


def repo_models_dir() -> Path:
    """``<repo>/models`` of a source checkout (or an editable install)."""
    return Path(__file__).resolve().parents[1] / "models"


def find_model(filename: str = DEFAULT_MODEL_FILE) -> Path:
    """``filename`` in the share folder's models/ if it is there, else in the repo's models/ (may not exist)."""
    share = share_dir()
    if share is not None and (share / "models" / filename).is_file():
        return share / "models" / filename
    return repo_models_dir() / filename


def default_model_path() -> Path:
    """The shipped ONNX model, models/dfd_recurrent.onnx (the path is returned even if it is missing)."""
    return find_model(DEFAULT_MODEL_FILE)


def default_checkpoint_path() -> Path:
    """The checkpoint shipped beside the ONNX model, models/dfd_recurrent.pt (for the torch backend)."""
    return default_model_path().with_suffix(".pt")


def cache_dir() -> Path:
    """$DFD_DEPTH_ROS_CACHE_DIR, else $XDG_CACHE_HOME/dfd_depth_ros, else ~/.cache/dfd_depth_ros."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / PACKAGE_NAME


def engine_cache_dir() -> Path:
    """Folder of the cached TensorRT engines (created on first write by the TensorRT backend)."""
    return cache_dir() / "engines"
