"""The rclpy nodes: depth_node, synthetic_camera, live_evaluator, demo_consumer, and their parameter machinery.

The only part of the package that imports rclpy; each node is a thin adapter around the ROS-free core.
"""
