"""Wire formats: ROS messages <-> numpy (images, camera_info, lens state, stamps, point clouds).

No rclpy at import: the functions take any object with the fields of the ROS message, and build
messages with lazily imported message classes.
"""
