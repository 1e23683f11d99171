"""The bag player node's publishing loop: a bag's raw CDR messages at their recorded timing (`dfd-depth play`).

On a full ROS 2 install the equivalent is ``ros2 bag play``; this is for installs without rosbag2.
"""

from __future__ import annotations

import importlib
import time

NODE_NAME = "dfd_bag_player"


class NoSubscriber(RuntimeError):
    """Waiting for subscribers timed out; the message names the lonely topics."""


def message_class(msgtype: str):
    """"sensor_msgs/msg/Image" -> the rclpy message class; None when the package is not installed."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        return None
    try:
        return getattr(importlib.import_module(f"{parts[0]}.{parts[1]}"), parts[2])
    except (ImportError, AttributeError):
        return None


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

    deadline = time.monotonic() + timeout_s
    while rclpy.ok():
        lonely = [t for t, pub in publishers.items() if pub.get_subscription_count() == 0]
        if not lonely:
            time.sleep(0.2)  # let the subscribers' side of the match settle too
            return
        if time.monotonic() > deadline:
            raise NoSubscriber(f"no subscriber on {', '.join(lonely)} after {timeout_s:g} s")
        time.sleep(0.05)


FLUSH_TIMEOUT_S = 2.0  # at the end of playback: how long to wait for the subscribers to acknowledge the last messages


def _flush(publishers: dict, timeout_s: float) -> bool:
    """Wait (at most ``timeout_s`` in all) until every reliable publisher's messages are acknowledged by its
    subscribers: a node destroyed right after its last publish can take the samples still in flight with it, and
    the last frame of a bag would then never reach the depth node or an evaluator. True when all were acked."""
    from rclpy.duration import Duration

    deadline = time.monotonic() + timeout_s
    acked = True
    for pub in publishers.values():
        left = max(deadline - time.monotonic(), 0.0)
        acked &= bool(pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))))
    return acked


def play(messages, publishers: dict, rate: float, loop: bool) -> tuple[int, int]:
    """Publish ``messages()`` (a fresh iterator of (topic, log time ns, CDR bytes) per pass) at log time / rate.

    Returns (messages, full passes). Stops early (returning what was sent) when ROS shuts down (Ctrl-C).
    """
    import rclpy

    sent, passes = 0, 0
    while True:
        t_bag0, t_wall0 = None, time.monotonic()
        for topic, log_ns, raw in messages():
            if t_bag0 is None:
                t_bag0 = log_ns
            if not _sleep_until(t_wall0 + (log_ns - t_bag0) * 1e-9 / rate):
                return sent, passes
            try:
                publishers[topic].publish(bytes(raw))
            except Exception:
                if rclpy.ok():
                    raise
                return sent, passes  # Ctrl-C between the check and the publish
            sent += 1
        passes += 1
        if not loop or t_bag0 is None:
            return sent, passes


def play_bag(messages, types: dict[str, str], rate: float, loop: bool, queue: int, delay_s: float = 0.0,
             wait_for_subscribers: bool = False, wait_timeout_s: float = 30.0, label: str = "") -> tuple[int, int]:
    """Create the player node with one publisher per topic of ``types`` (topic -> message type), publish
    (see ``play``), shut ROS down; returns (messages, full passes). NoSubscriber when waiting times out."""
    import rclpy

    rclpy.init(args=["dfd-depth-play"])
    node = rclpy.create_node(NODE_NAME)
    sent = passes = 0
    try:
        publishers = {t: node.create_publisher(message_class(m), t, _qos(queue)) for t, m in types.items()}
        if wait_for_subscribers:
            _wait_for_subscribers(publishers, wait_timeout_s)
        if _sleep_until(time.monotonic() + delay_s):
            print(f"playing {label} ({', '.join(types)}) at rate {rate:g}" + (", looping" if loop else ""), flush=True)
            sent, passes = play(messages, publishers, rate, loop)
            _flush(publishers, FLUSH_TIMEOUT_S)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return sent, passes
