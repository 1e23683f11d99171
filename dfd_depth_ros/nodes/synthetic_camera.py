"""synthetic_camera: publishes a generated defocus sequence in real time, like a camera driver.

    ros2 run dfd_depth_ros synthetic_camera --ros-args -p width:=160 -p height:=120
    python -m dfd_depth_ros.nodes.synthetic_camera --ros-args -p max_frames:=100

Renders one sequence with ``dfd_depth_ros.synthetic.sequences.generate_sequence`` at start-up (seconds to
a minute on a CPU, depending on size and length), then publishes, at ``fps``, per frame:

    image_raw    sensor_msgs/Image       rgb8
    camera_info  sensor_msgs/CameraInfo  K, plumb_bob, zero distortion
    lens_state   sensor_msgs/JointState  [focus_distance, f_number, focal_length] (bag contract)
    depth_gt     sensor_msgs/Image       32FC1 z-depth in metres (publish_depth_gt)

All four share header.stamp and frame_id. The stamp is the wall-clock (ROS clock) time at
which the timer tick was due, start + k / fps for the k-th tick: a receiver measures latency as
its receive time minus the stamp, and a tick the executor was too busy to run leaves a gap in
the stamps, like a frame a camera dropped (with an rclpy whose timers give no call info, k
counts published frames instead). Stamps keep increasing when the sequence loops. The lens
state goes out first, so a depth node has it when the image arrives. With ``loop`` the
sequence repeats; ``max_frames`` > 0 stops after that many frames (and the node exits).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from dfd_depth_ros.errors import first_line
from dfd_depth_ros.frames import DEFAULT_FRAME_ID
from dfd_depth_ros.nodes.graph import run_node
from dfd_depth_ros.nodes.params import StartupError, check_choices, declare_config, ros_param
from dfd_depth_ros.synthetic import MOTIONS, SCHEDULES

try:
    from rclpy.node import Node
except ImportError:  # importable without ROS (for the docs and the config class)
    Node = object

NODE_NAME = "synthetic_camera"


@dataclass(frozen=True)
class SyntheticCameraConfig:
    """Parameters of the synthetic camera (0 for a lens or field-of-view value: drawn from the seed)."""

    width: int = ros_param(160, "image width, px", range=(8, 4096))
    height: int = ros_param(120, "image height, px", range=(8, 4096))
    num_frames: int = ros_param(24, "frames in the rendered sequence", range=(1, 100000))
    fps: float = ros_param(10.0, "publishing rate and stamp rate, frames per second", range=(0.1, 1000.0))
    schedule: str = ros_param("sweep", "focus schedule", choices=SCHEDULES)
    motion: str = ros_param("smooth", "camera motion", choices=MOTIONS)
    seed: int = ros_param(0, "seeds scene, motion, lens draw and noise", range=(0, 2**31 - 1))
    noise: bool = ros_param(True, "add sensor noise")
    focal_length_m: float = ros_param(0.0, "focal length, m; 0: drawn", range=(0.0, 1.0))
    f_number: float = ros_param(0.0, "f-number; 0: drawn", range=(0.0, 64.0))
    hfov_deg: float = ros_param(0.0, "horizontal field of view, degrees; 0: drawn", range=(0.0, 170.0))
    max_blur_px: float = ros_param(25.0, "largest blur a lens draw may give, px", range=(0.5, 1000.0))
    loop: bool = ros_param(True, "repeat the sequence (stamps keep increasing)")
    max_frames: int = ros_param(0, "stop after this many published frames; 0: never (or after one pass "
                                "without loop)", range=(0, 2**31 - 1))
    frame_id: str = ros_param(DEFAULT_FRAME_ID, "frame_id of every header (the camera optical frame)")
    publish_depth_gt: bool = ros_param(True, "also publish the ground-truth depth on depth_gt")

    def __post_init__(self):
        check_choices(self)

    def sequence_config(self):
        """The dfd_depth_ros.synthetic.sequences.SequenceConfig of this camera."""
        from dfd_depth_ros.synthetic.sequences import SequenceConfig

        try:
            return SequenceConfig(
                width_px=self.width, height_px=self.height, num_frames=self.num_frames, fps=self.fps,
                schedule=self.schedule, motion=self.motion, seed=self.seed, noise=self.noise,
                focal_length_m=self.focal_length_m or None, f_number=self.f_number or None,
                hfov_deg=self.hfov_deg or None, max_blur_px=self.max_blur_px,
            )
        except ValueError as exc:
            raise StartupError(str(exc)) from None

    @property
    def total_frames(self) -> int:
        """Frames to publish before stopping; 0 = forever."""
        if self.max_frames:
            return self.max_frames
        return 0 if self.loop else self.num_frames


class SyntheticCamera(Node):
    """Publishes a pre-rendered Sequence at ``fps`` with increasing stamps; ``done`` once max_frames are out."""

    def __init__(self, node_name: str = NODE_NAME, sequence=None, autostart: bool = True, **node_kwargs):
        """``sequence``: a ready Sequence to publish (tests, the demo); None renders one from the parameters.
        ``autostart`` False: publish nothing until ``start()`` (e.g. until every subscriber has matched)."""
        from sensor_msgs.msg import CameraInfo, Image, JointState

        from dfd_depth_ros.msgs.convert import camera_info_msg, float_image_msg, image_msg, make_header

        super().__init__(node_name, **node_kwargs)
        self.cfg = declare_config(self, SyntheticCameraConfig)
        if sequence is None:
            seq_cfg = self.cfg.sequence_config()
            self.get_logger().info(f"rendering {seq_cfg.num_frames} frames of {seq_cfg.width_px}x{seq_cfg.height_px}"
                                   f" ({seq_cfg.schedule}, seed {seq_cfg.seed}); this can take a while on a CPU")
            from dfd_depth_ros.synthetic.sequences import generate_sequence

            try:
                sequence = generate_sequence(seq_cfg, progress=False)
            except (ValueError, RuntimeError) as exc:  # e.g. no lens draw fits max_blur_px
                raise StartupError(f"cannot render the sequence: {first_line(exc)}") from None
        if len(sequence) == 0:
            raise StartupError("the sequence has no frames")
        self.sequence = sequence
        header = make_header(0, self.cfg.frame_id)
        # Messages are built once; each tick only sets the header.
        self._images = [image_msg(f.image, "rgb8", header) for f in sequence]
        self._depths = [float_image_msg(f.depth_m, header) if f.depth_m is not None else None for f in sequence]
        self._infos = [camera_info_msg(f.K, f.width, f.height, header) for f in sequence]
        self._lenses = [f.lens for f in sequence]
        qos = _camera_qos()
        self.lens_pub = self.create_publisher(JointState, "lens_state", 10)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", qos)
        self.image_pub = self.create_publisher(Image, "image_raw", qos)
        self.depth_pub = self.create_publisher(Image, "depth_gt", qos) if self.cfg.publish_depth_gt else None
        self.published = 0
        self.done = False
        self._t0_ns: int | None = None
        self._period_ns = round(1e9 / self.cfg.fps)
        self._timer = None
        if autostart:
            self.start()

    def start(self) -> None:
        """Start publishing (once; the constructor does it unless ``autostart`` is False)."""
        if self._timer is not None:
            return
        try:
            from rclpy.timer import TimerInfo
        except ImportError:  # an rclpy without timer call info: stamps count published frames
            self._timer = self.create_timer(self._period_ns * 1e-9, lambda: self._tick(None))
        else:
            def tick(info) -> None:
                self._tick(info.expected_call_time.nanoseconds)

            tick.__annotations__["info"] = TimerInfo  # rclpy hands TimerInfo to a parameter annotated with it
            self._timer = self.create_timer(self._period_ns * 1e-9, tick)
        self.get_logger().info(f"publishing {len(self.sequence)} frames at {self.cfg.fps:g} fps"
                               + (" in a loop" if self.cfg.loop else "")
                               + (f", stopping after {self.cfg.total_frames}" if self.cfg.total_frames else ""))

    def _tick(self, due_ns: int | None) -> None:
        """Publish the next frame, stamped ``due_ns`` (the tick's due time), or start + k / fps if None."""
        from dfd_depth_ros.msgs.convert import joint_state_msg, make_header

        if self.done:
            return
        if self._t0_ns is None:
            self._t0_ns = self.get_clock().now().nanoseconds
        i = self.published % len(self.sequence)
        stamp_ns = due_ns if due_ns else self._t0_ns + self.published * self._period_ns
        header = make_header(stamp_ns, self.cfg.frame_id)
        self.lens_pub.publish(joint_state_msg(self._lenses[i], header))
        for msg, pub in ((self._infos[i], self.info_pub), (self._images[i], self.image_pub),
                         (self._depths[i], self.depth_pub)):
            if msg is not None and pub is not None:
                msg.header = header
                pub.publish(msg)
        self.published += 1
        if self.cfg.total_frames and self.published >= self.cfg.total_frames:
            self.done = True
            self._timer.cancel()
            self.get_logger().info(f"published {self.published} frames; done")


def _camera_qos():
    """Reliable, newest only, like a camera driver: best-effort and reliable subscribers both match."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def main(argv: list[str] | None = None) -> int:
    """``synthetic_camera`` console script: exits 0 when done or shut down, 2 if it cannot start."""
    return run_node(SyntheticCamera, NODE_NAME, argv, {"until": lambda node: (lambda: node.done)})


if __name__ == "__main__":
    sys.exit(main())
