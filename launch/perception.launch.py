"""Launch the omg_seg node (and optionally RViz showing its overlay).

    ros2 launch omg_seg_ros perception.launch.py image_topic:=/camera/color/image_raw rviz:=true

Arguments (each overrides the parameters file):
    image_topic   input sensor_msgs/Image topic (the compressed variant is <image_topic>/compressed)
    depth         true: 3D from a registered depth camera (node parameter depth.enabled)
    depth_topic   depth image registered to the colour image (16UC1 mm / 32FC1 m), e.g. RealSense's aligned one
    camera_info_topic  the COLOUR camera's sensor_msgs/CameraInfo
    params_file   ros__parameters YAML (default: the package's config/perception.yaml)
    model         omg_seg_tiny | omg_seg_convl
    weights       checkpoint path ('' = the shipped models/<model>.pth)
    backend       auto (on a CPU the faster of torch and onnxruntime) | torch | onnxruntime | tensorrt
    device        cpu | cuda | cuda:N | auto
    use_sim_time  true when playing bags with --clock
    rviz          true to start RViz with config/perception.rviz
    namespace     namespace for the node (topics become /<ns>/omg_seg/...)
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "omg_seg_ros"

#: launch argument -> (default, description); arguments named like a node parameter override it.
ARGUMENTS = {
    "image_topic": ("/camera/image_raw", "input image topic"),
    "depth": ("false", "3D answers from a registered depth camera (node parameter depth.enabled)"),
    "depth_topic": ("/camera/aligned_depth_to_color/image_raw", "depth image registered to the colour image"),
    "camera_info_topic": ("/camera/color/camera_info", "the colour camera's CameraInfo"),
    "params_file": (None, "parameters YAML (default: <share>/config/perception.yaml)"),
    "model": ("omg_seg_tiny", "model name"),
    "weights": ("", "checkpoint path; '' = shipped models/<model>.pth"),
    "backend": ("auto", "auto (on a CPU the faster of torch and onnxruntime, timed at configure) | torch | onnxruntime | tensorrt"),
    "device": ("cpu", "cpu | cuda | cuda:N | auto"),
    "use_sim_time": ("false", "use /clock (bag playback)"),
    "rviz": ("false", "start RViz showing the overlay"),
    "namespace": ("", "node namespace"),
}
#: Launch arguments passed to the node as parameters of the same name.
NODE_PARAMETERS = ("model", "weights", "backend", "device", "use_sim_time")


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    default_params = os.path.join(share, "config", "perception.yaml")
    args = [DeclareLaunchArgument(name, default_value=default_params if default is None else default,
                                  description=desc) for name, (default, desc) in ARGUMENTS.items()]
    params_file = LaunchConfiguration("params_file")
    overrides = {name: LaunchConfiguration(name) for name in NODE_PARAMETERS if name != "use_sim_time"}
    overrides["use_sim_time"] = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    overrides["depth.enabled"] = ParameterValue(LaunchConfiguration("depth"), value_type=bool)
    image_topic = LaunchConfiguration("image_topic")
    # Shared memory large enough for camera images (see the XML); a profile the user already set wins.
    profile = os.path.join(share, "config", "perception_fastdds.xml")
    env = {"FASTRTPS_DEFAULT_PROFILES_FILE": profile} if os.path.exists(profile) and \
        "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ else {}
    node = Node(
        package=PACKAGE,
        executable="omg-seg-node",
        name="omg_seg",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        additional_env=env,
        parameters=[params_file, overrides],
        remappings=[
            ("~/input/image", image_topic),
            ("~/input/image/compressed", [image_topic, "/compressed"]),
            ("~/input/depth", LaunchConfiguration("depth_topic")),
            ("~/input/camera_info", LaunchConfiguration("camera_info_topic")),
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="omg_seg_rviz",
        arguments=["-d", os.path.join(share, "config", "perception.rviz")],
        parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription(args + [node, rviz])
