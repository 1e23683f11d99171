"""`dfd-depth play`: publish a bag's messages over ROS 2 with their recorded timing.

    dfd-depth play BAG [--rate R] [--loop] [--topics T [T ...]]

On a full ROS 2 install the equivalent is rosbag2's

    ros2 bag play BAG --rate R --loop --topics T [T ...]

this command is for installs without it (ROS 2 from pip wheels has no `ros2 bag`). Every
message goes out on its recorded topic with the bag's message type (which must be importable
here, e.g. sensor_msgs), as the recorded CDR bytes (no re-encoding), at its recorded log time
divided by --rate. Header stamps are left as recorded, so with --loop they jump back at each
wrap and depth_node resets its temporal state (time_backwards). QoS: reliable, keep last
--queue, volatile (matches reliable and best-effort subscribers). Stops at the end of the bag,
or on Ctrl-C. FASTDDS_DEFAULT_PROFILES_FILE is set to the shipped Fast DDS profile unless set.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

from dfd_depth_ros.errors import first_line


def register(sub) -> None:
    p = sub.add_parser("play", help="publish a bag over ROS 2 with its recorded timing (like ros2 bag play)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="bag folder (or a .mcap / .db3 file)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default %(default)s)")
    p.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="publish only these topics (default: all)")
    p.add_argument("--delay-s", type=float, default=0.0, help="wait this long before the first message, s")
    p.add_argument("--wait-for-subscribers", action="store_true",
                   help="before playing, wait until every played topic has a subscriber (see --wait-timeout-s)")
    p.add_argument("--wait-timeout-s", type=float, default=30.0,
                   help="give up waiting for subscribers after this long, s (default %(default)s)")
    p.add_argument("--queue", type=int, default=100, help="publisher history depth (default %(default)s)")
    p.set_defaults(func=run)


def message_class(msgtype: str):
    """"sensor_msgs/msg/Image" -> the rclpy message class; None when the package is not installed."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        return None
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        return None


def _select(reader, bag: Path, wanted: list[str] | None) -> tuple[list, dict[str, str], list[str]]:
    """(connections to play, topic -> type, warnings). CommandError for unknown or unplayable requested topics."""
    from dfd_depth_ros.cli import CommandError

    types: dict[str, str] = {}
    for c in reader.connections:
        types.setdefault(c.topic, c.msgtype)
    listing = ", ".join(f"{t} [{m}]" for t, m in sorted(types.items())) or "(none)"
    if wanted:
        missing = [t for t in wanted if t not in types]
        if missing:
            raise CommandError(f"bag {bag} has no topic {', '.join(missing)}; its topics: {listing}")
    warnings, keep = [], {}
    for topic, msgtype in types.items():
        if wanted and topic not in wanted:
            continue
        if message_class(msgtype) is None:
            if wanted:
                raise CommandError(f"topic {topic}: message type {msgtype} is not available in this ROS install")
            warnings.append(f"skipping {topic}: message type {msgtype} is not available in this ROS install")
            continue
        keep[topic] = msgtype
    if not keep:
        raise CommandError(f"bag {bag}: nothing to play; its topics: {listing}")
    conns = [c for c in reader.connections if c.topic in keep and c.msgtype == keep[c.topic]]
    return conns, keep, warnings


def _qos(depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def _sleep_until(deadline: float) -> bool:
    """Sleep until time.monotonic() reaches ``deadline``; False if ROS shut down (Ctrl-C) meanwhile."""
    import rclpy

    while rclpy.ok():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.05))
    return False


def _wait_for_subscribers(publishers: dict, timeout_s: float) -> None:
    import rclpy

    from dfd_depth_ros.cli import CommandError

    deadline = time.monotonic() + timeout_s
    while rclpy.ok():
        lonely = [t for t, pub in publishers.items() if pub.get_subscription_count() == 0]
        if not lonely:
            time.sleep(0.2)  # let the subscribers' side of the match settle too
            return
        if time.monotonic() > deadline:
            raise CommandError(f"no subscriber on {', '.join(lonely)} after {timeout_s:g} s")
        time.sleep(0.05)


def _raw_messages(reader, bag: Path, connections):
    """(connection, log time ns, raw CDR bytes) in log-time order; BagError for data that cannot be read."""
    from dfd_depth_ros.evaluation.bagio import BagError

    it = reader.messages(connections=connections)
    while True:
        try:
            item = next(it, None)
        except Exception as exc:  # rosbags raises its own types (and struct/sqlite errors) on damaged data
            raise BagError(f"cannot read bag {bag}: it is corrupt or truncated ({first_line(exc)})") from exc
        if item is None:
            return
        yield item


def play(reader, bag: Path, connections, publishers: dict, rate: float, loop: bool) -> tuple[int, int]:
    """Publish the raw messages of ``connections`` at log time / rate; returns (messages, full passes).

    Stops early (returning what was sent) when ROS shuts down (Ctrl-C).
    """
    import rclpy

    sent, passes = 0, 0
    while True:
        t_bag0, t_wall0 = None, time.monotonic()
        for conn, log_ns, raw in _raw_messages(reader, bag, connections):
            if t_bag0 is None:
                t_bag0 = log_ns
            if not _sleep_until(t_wall0 + (log_ns - t_bag0) * 1e-9 / rate):
                return sent, passes
            try:
                publishers[conn.topic].publish(bytes(raw))
            except Exception:
                if rclpy.ok():
                    raise
                return sent, passes  # Ctrl-C between the check and the publish
            sent += 1
        passes += 1
        if not loop or t_bag0 is None:
            return sent, passes


def run(args) -> int:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.commands.run import PROFILE_ENV, shipped_config
    from dfd_depth_ros.evaluation.bagio import BagError, open_bag

    if not args.rate > 0 or args.delay_s < 0 or args.queue < 1 or not args.wait_timeout_s > 0:
        raise CommandError("--rate and --wait-timeout-s must be > 0, --delay-s >= 0 and --queue >= 1")
    profile = shipped_config("fastdds_profile.xml")
    if not os.environ.get(PROFILE_ENV) and profile.is_file():
        os.environ[PROFILE_ENV] = str(profile)
    try:
        with open_bag(args.bag) as reader:
            return _play_open_bag(reader, Path(args.bag), args)
    except BagError as exc:
        raise CommandError(str(exc)) from None


def _play_open_bag(reader, bag: Path, args) -> int:
    import rclpy

    connections, types, warnings = _select(reader, bag, args.topics)
    for w in warnings:
        print(f"dfd-depth play: warning: {w}", file=sys.stderr)
    rclpy.init(args=["dfd-depth-play"])
    node = rclpy.create_node("dfd_bag_player")
    sent = passes = 0
    try:
        publishers = {t: node.create_publisher(message_class(m), t, _qos(args.queue)) for t, m in types.items()}
        if args.wait_for_subscribers:
            _wait_for_subscribers(publishers, args.wait_timeout_s)
        if _sleep_until(time.monotonic() + args.delay_s):
            print(f"playing {bag} ({', '.join(types)}) at rate {args.rate:g}" + (", looping" if args.loop else ""),
                  flush=True)
            sent, passes = play(reader, bag, connections, publishers, args.rate, args.loop)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"published {sent} messages on {len(types)} topics ({passes} full passes)", flush=True)
    return 0
