"""dfd_depth_ros: metric depth from defocus for ROS 2.

Layout, lowest layer first (a module imports only its own layer and the ones below; test/test_architecture.py):
    core         optics (thin lens), frames, lens (lens history), calibration, stamps, stamp_pairing, metrics,
                 pointcloud, network, model_contract, onnx_export, package_paths, errors, viz
    backends/    ONNX Runtime, PyTorch and TensorRT behind one interface
    depth_stream the estimator core: preprocessing, backend, temporal state and its resets
    msgs/        ROS messages <-> numpy (no rclpy at import)
    evaluation/  bag I/O (the bag contract), bag replay evaluation, report, scoreboard, classical references
    synthetic/   the seeded generator the demo and the synthetic camera run (training uses it too)
    nodes/       the rclpy nodes: the only rclpy importers
    cli.py, commands/  the `dfd-depth` command
training/ (offline, not installed) trains and exports; benchmark/ (offline) renders the independent benchmark.
"""

__version__ = "0.1.0"
