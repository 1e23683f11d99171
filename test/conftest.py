"""Fixtures of the depth_node tests (test_depth_node_*.py); the helpers are in depth_node_harness.py.

Each test module that uses ``client`` gets its own node process on its module's ``DOMAIN``.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def plane_model(tmp_path_factory):
    """The plane model (depth = focus distance everywhere), exported once per test session."""
    from depth_node_harness import export_plane_model

    return export_plane_model(tmp_path_factory.mktemp("model") / "plane.onnx")


@pytest.fixture(scope="module")
def node_log(request, plane_model, tmp_path_factory):
    """The module's depth node process (NODE_TEST_PARAMS, on the module's DOMAIN); yields its log file."""
    from depth_node_harness import NODE_TEST_PARAMS, node_process, params_args

    log = tmp_path_factory.mktemp("node") / "node.log"
    with node_process(params_args(plane_model, **NODE_TEST_PARAMS), request.module.DOMAIN, log):
        yield log


@pytest.fixture(scope="module")
def client(request, node_log):
    """A Client connected to the module's node."""
    from depth_node_harness import PROFILE, Client

    saved = {k: os.environ.get(k) for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")}
    os.environ.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", FASTDDS_DEFAULT_PROFILES_FILE=str(PROFILE))
    c = Client(request.module.DOMAIN)
    assert c.connected(), f"the node did not come up:\n{node_log.read_text()}"
    c.spin_until(lambda: False, 0.5)  # let the node see our subscriptions too (points are built on demand)
    yield c
    c.close()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
