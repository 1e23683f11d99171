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
import sys
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


def _select(reader, bag: Path, wanted: list[str] | None) -> tuple[list, dict[str, str], list[str]]:
    """(connections to play, topic -> type, warnings). CommandError for unknown or unplayable requested topics."""
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.nodes.bag_player import message_class

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


def run(args) -> int:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.evaluation.bagio import BagError, open_bag
    from dfd_depth_ros.nodes.graph import use_dds_profile

    if not args.rate > 0 or args.delay_s < 0 or args.queue < 1 or not args.wait_timeout_s > 0:
        raise CommandError("--rate and --wait-timeout-s must be > 0, --delay-s >= 0 and --queue >= 1")
    use_dds_profile()
    try:
        with open_bag(args.bag) as reader:
            return _play_open_bag(reader, Path(args.bag), args)
    except BagError as exc:
        raise CommandError(str(exc)) from None


def _play_open_bag(reader, bag: Path, args) -> int:
    from dfd_depth_ros.cli import CommandError
    from dfd_depth_ros.nodes.bag_player import NoSubscriber, play_bag

    connections, types, warnings = _select(reader, bag, args.topics)
    for w in warnings:
        print(f"dfd-depth play: warning: {w}", file=sys.stderr)

    def messages():
        return ((conn.topic, log_ns, raw) for conn, log_ns, raw in _raw_messages(reader, bag, connections))

    try:
        sent, passes = play_bag(messages, types, args.rate, args.loop, args.queue, args.delay_s,
                                args.wait_for_subscribers, args.wait_timeout_s, label=str(bag))
    except NoSubscriber as exc:
        raise CommandError(str(exc)) from None
    print(f"published {sent} messages on {len(types)} topics ({passes} full passes)", flush=True)
    return 0

