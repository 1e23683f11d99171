"""`dfd-depth run`: the ROS 2 node graph in one process, without `ros2 launch`.

Starts the depth node (and, with --synthetic, the synthetic camera) with the same parameters
file the launch files use, on one multi-threaded executor. Topics live in the --camera
namespace: the depth node reads <camera>/image_raw, camera_info and lens_state (rename with
--image-topic etc.) and publishes <camera>/depth/image, depth/camera_info, confidence/image and points.
FASTDDS_DEFAULT_PROFILES_FILE is set to the shipped Fast DDS profile unless already set.
Stop with Ctrl-C; with --synthetic --max-frames N it stops by itself after N frames.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from dfd_depth_ros.backends import BACKEND_NAMES

    p = sub.add_parser("run", help="run the depth node (and a synthetic camera) in one process",
                       description=__doc__)
    p.add_argument("--params-file", help="node parameters, YAML (default: the shipped config/depth.yaml)")
    p.add_argument("--model", help="ONNX model file (overrides model_path of the parameters file)")
    p.add_argument("--backend", choices=BACKEND_NAMES, help="inference backend (overrides the parameters file)")
    p.add_argument("--synthetic", action="store_true", help="also start the synthetic camera")
    p.add_argument("--max-frames", type=int, help="with --synthetic: publish this many frames, then exit")
    p.add_argument("--camera", default="camera", help="namespace of the camera topics (default %(default)s)")
    p.add_argument("--image-topic", default="image_raw", help="image topic in the namespace (default %(default)s)")
    p.add_argument("--camera-info-topic", default="camera_info", help="default %(default)s")
    p.add_argument("--lens-topic", default="lens_state", help="JointState lens topic (default %(default)s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.nodes.depth_node import DepthNode
    from dfd_depth_ros.nodes.graph import (
        init_with_params,
        overrides,
        remap_args,
        shutdown,
        spin_nodes,
        use_dds_profile,
    )
    from dfd_depth_ros.nodes.params import StartupError
    from dfd_depth_ros.package_paths import config_file

    params = Path(args.params_file) if args.params_file else config_file("depth.yaml")
    if not params.is_file():
        raise CommandError(f"parameters file {params} does not exist")
    if args.max_frames is not None and (args.max_frames < 1 or not args.synthetic):
        raise CommandError("--max-frames needs --synthetic and a value >= 1")
    use_dds_profile()
    try:
        init_with_params(params)
    except StartupError as exc:
        raise CommandError(str(exc)) from None
    camera = None
    try:
        depth = DepthNode(namespace=args.camera, parameter_overrides=overrides(model_path=args.model,
                                                                               backend=args.backend),
                          cli_args=remap_args({"image": args.image_topic, "camera_info": args.camera_info_topic,
                                               "lens_state": args.lens_topic}))
        nodes = [depth]
        if args.synthetic:
            from dfd_depth_ros.nodes.synthetic_camera import SyntheticCamera

            camera = SyntheticCamera(namespace=args.camera, parameter_overrides=overrides(max_frames=args.max_frames),
                                     cli_args=remap_args({"image_raw": args.image_topic,
                                                          "camera_info": args.camera_info_topic,
                                                          "lens_state": args.lens_topic}))
            nodes.append(camera)
    except StartupError as exc:
        shutdown()
        raise CommandError(str(exc)) from None
    stops = camera is not None and camera.cfg.total_frames > 0
    spin_nodes(nodes, threads=2, until=(lambda: camera.done) if stops else None, linger_s=2.0)
    s = depth.stats
    print(f"depth_node: {s.frames_in} frames in, {s.frames_out} depth images out, {s.skipped} skipped, "
          f"{s.dropped} dropped, {s.resets} state resets")
    return 0
