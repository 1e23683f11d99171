"""What bag reading and writing share: topic names and types, errors, the read report, the typestore."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
JOINT_STATE_TYPE = "sensor_msgs/msg/JointState"
CUSTOM_NAME = "dfd_depth_ros.sequence_name"
CUSTOM_META = "dfd_depth_ros.meta"
NS = 1_000_000_000


class BagError(Exception):
    """A bag cannot be read or written; the message is one readable line."""


@dataclass(frozen=True)
class BagTopics:
    """Topic names of the bag contract."""

    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    lens_state: str = "/camera/lens_state"
    depth_gt: str = "/camera/depth_gt"

    def expected_types(self) -> dict[str, tuple[str, str]]:
        """role -> (topic, message type)."""
        return {
            "image": (self.image, IMAGE_TYPE),
            "camera_info": (self.camera_info, CAMERA_INFO_TYPE),
            "lens_state": (self.lens_state, JOINT_STATE_TYPE),
            "depth_gt": (self.depth_gt, IMAGE_TYPE),
        }


@dataclass
class BagReadReport:
    """What reading a bag kept and dropped (counts of frames or messages)."""

    frames: int = 0
    skipped_no_lens: int = 0
    skipped_no_camera_info: int = 0
    skipped_out_of_order: int = 0
    camera_info_inexact: int = 0
    frames_without_depth: int = 0
    lens_samples: int = 0
    lens_samples_ignored: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@lru_cache(maxsize=1)
def typestore():
    """The rosbags typestore used for every bag (ROS 2 Kilted message definitions)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * NS + int(header.stamp.nanosec)


IMAGE_ENCODINGS = ("rgb8", "bgr8", "mono8")  # what the contract allows for the image topic
