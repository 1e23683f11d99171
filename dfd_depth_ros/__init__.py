"""dfd_depth_ros: metric depth from defocus for ROS 2.

Layout (one concern per module):
    optics.py       thin-lens blur model shared by rendering, training and inference
    frames.py       Frame / Sequence, the data every stage exchanges
    image_codec.py  sensor_msgs/Image <-> numpy (cv_bridge replacement)
    bagio.py        rosbag2 read/write following the evaluation bag contract
    viz.py          colour maps and preview strips
    cli.py          the `dfd-depth` command; subcommands live in commands/
"""

__version__ = "0.1.0"
