"""dfd_depth_ros: installs with colcon (ament_python) on a ROS 2 system, or with pip in a venv."""

from glob import glob

from setuptools import find_packages, setup

package_name = "dfd_depth_ros"


def share(subdir, pattern="*"):
    """(install dir, files) for one share/ subfolder; empty folders are skipped."""
    files = [f for f in glob(f"{subdir}/{pattern}") if not f.endswith("README.md")]
    return (f"share/{package_name}/{subdir}", files)


data_files = [
    ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
    (f"share/{package_name}", ["package.xml"]),
]
data_files += [d for d in (share("launch", "*.py"), share("config"), share("models")) if d[1]]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),  # training/ and benchmark/ stay offline
    data_files=data_files,
    install_requires=["setuptools", "numpy", "pyyaml", "tqdm"],
    zip_safe=True,
    maintainer="dfd_depth_ros developers",
    maintainer_email="dev@dfd-depth-ros.invalid",
    description="Metric depth from defocus for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "dfd-depth = dfd_depth_ros.cli:main",
            "depth_node = dfd_depth_ros.nodes.depth_node:main",
            "synthetic_camera = dfd_depth_ros.nodes.synthetic_camera:main",
            "live_evaluator = dfd_depth_ros.nodes.live_evaluator:main",
        ],
    },
)
