"""rosbag2 bags <-> Sequence, following ../shared/specs/bag-contract.md, with PyPI ``rosbags``.

Topics (names overridable through ``BagTopics``):

    /camera/image_raw    sensor_msgs/msg/Image       rgb8 on write; rgb8, bgr8, mono8 (and the
                                                     other colour/mono encodings of image_codec)
                                                     with any row padding on read
    /camera/camera_info  sensor_msgs/msg/CameraInfo  K, P, plumb_bob with 5 zero D, R = I
    /camera/lens_state   sensor_msgs/msg/JointState  focus_distance [m] (or focus_diopters
                                                     [1/m]), f_number [-], focal_length [m]
    /camera/depth_gt     sensor_msgs/msg/Image       32FC1 z-depth in metres, NaN = no GT
                                                     (16UC1 millimetres also read)

Image, camera_info and depth_gt of one frame share header.stamp and frame_id. On read, the lens
state of a frame is the one at its image stamp, found by ``dfd_depth_ros.lens.LensHistory`` (the live
node's implementation): linearly interpolated between the bracketing lens samples (focus in
dioptres) when they are at most ``max_lens_gap_s`` apart, else the nearest sample within
``lens_tolerance_s``; frames without one are skipped and counted.
Storage (sqlite3 or mcap) is detected on read; the input bag is opened read-only.
"""

from dfd_depth_ros.evaluation.bagio.common import (
    IMAGE_ENCODINGS,
    BagError,
    BagReadReport,
    BagTopics,
    stamp_ns,
    typestore,
)
from dfd_depth_ros.evaluation.bagio.read import (
    bag_meta,
    iter_bag_frames,
    no_frames_message,
    open_bag,
    read_sequence_bag,
    storage_name,
)
from dfd_depth_ros.evaluation.bagio.write import write_sequence_bag

__all__ = [
    "IMAGE_ENCODINGS",
    "BagError",
    "BagReadReport",
    "BagTopics",
    "bag_meta",
    "iter_bag_frames",
    "no_frames_message",
    "open_bag",
    "read_sequence_bag",
    "stamp_ns",
    "storage_name",
    "typestore",
    "write_sequence_bag",
]
