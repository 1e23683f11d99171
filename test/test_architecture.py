"""The import graph of the installed package: no cycle, no upward import, rclpy only in nodes/, training offline.

Layers, lowest first (a module may import its own layer and the ones below):

    core        optics, frames, lens, network, metrics, ... (top-level modules of dfd_depth_ros)
    backends    inference backends
    stream      depth_stream (the estimator core: preprocessing, backend, temporal state)
    msgs        ROS messages <-> numpy (message classes imported inside functions only)
    evaluation, synthetic
    nodes       the rclpy nodes (the only rclpy importers)
    cli         cli.py and commands/
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "dfd_depth_ros"
LAYERS = {"core": 0, "backends": 1, "stream": 2, "msgs": 3, "evaluation": 4, "synthetic": 4, "nodes": 5, "cli": 6}
ROS_PACKAGES = {"rclpy", "sensor_msgs", "std_msgs", "std_srvs", "diagnostic_msgs", "rcl_interfaces",
                "builtin_interfaces", "geometry_msgs", "launch", "launch_ros", "ament_index_python",
                "message_filters", "cv_bridge", "sensor_msgs_py", "tf2_ros"}
ALLOWED_ELSEWHERE = {"ament_index_python"}  # package_paths finds the share folder of a ROS install, if any


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return LAYERS["core"]
    head = parts[1]
    if head in ("cli", "commands"):
        return LAYERS["cli"]
    if head == "depth_stream":
        return LAYERS["stream"]
    return LAYERS.get(head, LAYERS["core"])


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) of one file; relative imports resolved."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in tree.body:  # imports inside try/except or if at module level count as module level
        if isinstance(node, (ast.Try, ast.If)):
            top |= {id(n) for n in ast.walk(node)}
    pkg = module_name(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            out.append((base, id(node) in top))
            out += [(f"{base}.{alias.name}", id(node) in top) for alias in node.names]
    return out


def project_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    names = {module_name(f) for f in files}
    graph = {}
    for f in files:
        graph[module_name(f)] = {m for m, _ in imports(f) if m in names and m != module_name(f)}
    return graph


def test_installed_package_never_imports_training_or_benchmark():
    offenders = [(module_name(f), m) for f in PACKAGE.rglob("*.py") for m, _ in imports(f)
                 if m.split(".")[0] in ("training", "benchmark")]
    assert offenders == []


def test_no_upward_import():
    graph = project_graph()
    upward = [(a, b) for a, deps in graph.items() for b in deps
              if layer(b) > layer(a) and not b.startswith(a + ".")]  # a package may import its own modules
    assert upward == [], "a lower layer imports a higher one"


def test_no_import_cycle():
    graph = project_graph()
    # a package's __init__ re-exporting its modules is not a cycle with them
    graph = {a: {b for b in deps if not b.startswith(a + ".")} for a, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_rclpy_and_ros_messages_only_in_nodes():
    offenders = []
    for f in PACKAGE.rglob("*.py"):
        mod = module_name(f)
        in_nodes = layer(mod) == LAYERS["nodes"]
        for m, top in imports(f):
            root = m.split(".")[0]
            if root not in ROS_PACKAGES or in_nodes or root in ALLOWED_ELSEWHERE:
                continue
            if layer(mod) == LAYERS["msgs"] and not top:
                continue  # msgs builds messages with classes imported inside its functions
            offenders.append((mod, m))
    assert sorted(set(offenders)) == []


def test_training_has_no_import_cycle():
    files = sorted((REPO / "training").glob("*.py"))
    names = {module_name(f) for f in files}
    graph = {module_name(f): {m for m, _ in imports(f) if m in names and m != module_name(f)} for f in files}
    for a, deps in graph.items():
        for b in deps:
            assert a not in graph.get(b, set()), f"{a} and {b} import each other"
