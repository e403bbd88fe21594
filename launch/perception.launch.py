"""Launch the omg_seg node (and optionally RViz showing its overlay).

    ros2 launch omg_seg_ros perception.launch.py image_topic:=/camera/color/image_raw rviz:=true
    # a robot with three cameras, ONE node and model (topics /front/color/image_raw, /left/..., /right/...):
    ros2 launch omg_seg_ros perception.launch.py cameras:=front,left,right image_topic:=/{camera}/color/image_raw

Arguments (each overrides the parameters file):
    cameras       comma-separated camera names served by ONE node and model (node parameter cameras; its inputs
                  ~/<name>/input/..., outputs ~/<name>/output/...); '' (default) = one unnamed camera, today's topics
    image_topic   input sensor_msgs/Image topic (the compressed variant is <image_topic>/compressed); with several
                  cameras a pattern with {camera} (/{camera}/color/image_raw) or one topic per camera, comma-separated
    depth         true: 3D from a registered depth camera (node parameter depth.enabled)
    depth_topic   depth image registered to the colour image (16UC1 mm / 32FC1 m), e.g. RealSense's aligned one
                  (several cameras: a {camera} pattern or a list, as image_topic)
    camera_info_topic  the COLOUR camera's sensor_msgs/CameraInfo (several cameras: as depth_topic)
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
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "omg_seg_ros"

#: launch argument -> (default, description); arguments named like a node parameter override it.
ARGUMENTS = {
    "cameras": ("", "comma-separated camera names (front,left,right) for ONE node and model; '' = one unnamed camera"),
    "image_topic": ("/camera/image_raw", "input image topic (several cameras: /{camera}/image_raw or a comma list)"),
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
#: Node inputs of one camera (for camera "front": "~/front/input/image") -> (launch argument with the topic, suffix,
#: depth input). With depth:=false a depth argument that is ONE topic for several cameras is not remapped (nothing
#: subscribes to it then); with depth:=true every camera needs its own (pattern or list).
REMAPPINGS = (("~/input/image", "image_topic", "", False),
              ("~/input/image/compressed", "image_topic", "/compressed", False),
              ("~/input/depth", "depth_topic", "", True),
              ("~/input/camera_info", "camera_info_topic", "", True))


def camera_names(text: str) -> list:
    """Launch argument `cameras` -> node parameter: "front, left,right" -> ["front", "left", "right"]; "" -> [""]
    (one unnamed camera). The node checks the names (ROS name tokens, no duplicates, limits.max_cameras)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or [""]


def camera_names_in_params_file(path: str) -> list:
    """The `cameras` a parameters file gives the node (under `omg_seg`, any `.../omg_seg` or `/**`
    ros__parameters), or [""] when it gives none: with no `cameras` launch argument the node takes the file's list,
    and the launch must remap THOSE cameras' inputs."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError:
        return [""]
    for key, body in data.items() if isinstance(data, dict) else ():
        params = body.get("ros__parameters") if isinstance(body, dict) else None
        if (str(key).rstrip("/").endswith("omg_seg") or key == "/**") and isinstance(params, dict) \
                and params.get("cameras"):
            return [str(n) for n in params["cameras"]]
    return [""]


def camera_topic(value: str, camera: str, index: int, count: int) -> str:
    """One camera's topic from a topic argument: a comma-separated list (one topic per camera, in camera order), a
    pattern with {camera}, or (one camera only) a plain topic. ValueError saying what to give otherwise."""
    topics = [t.strip() for t in value.split(",")]
    if len(topics) > 1:
        if len(topics) != count:
            raise ValueError(f"'{value}' lists {len(topics)} topics for {count} camera(s): give one per camera")
        return topics[index]
    if "{camera}" in value:
        if not camera:
            raise ValueError(f"'{value}' has {{camera}} but the camera has no name (launch argument cameras)")
        return value.replace("{camera}", camera)
    if count > 1:
        raise ValueError(f"'{value}' is one topic for {count} cameras: give a pattern with {{camera}} "
                         "(/{camera}/color/image_raw) or one topic per camera, comma-separated")
    return value


def camera_remappings(cameras: list, topics: dict, depth: bool) -> list:
    """(node topic, robot topic) for every camera's inputs; `topics`: launch argument name -> value."""
    out = []
    for i, cam in enumerate(cameras):
        for rel, arg, suffix, depth_input in REMAPPINGS:
            try:
                topic = camera_topic(topics[arg], cam, i, len(cameras))
            except ValueError:
                if depth_input and not depth:
                    continue
                raise
            out.append((rel.replace("~/", f"~/{cam}/", 1) if cam else rel, topic + suffix))
    return out


def _perception_node(context) -> list:
    """The omg_seg node for the launch arguments' values (the camera list decides its remappings)."""
    share = get_package_share_directory(PACKAGE)
    conf = context.launch_configurations
    params_file = LaunchConfiguration("params_file")
    overrides = {name: LaunchConfiguration(name) for name in NODE_PARAMETERS if name != "use_sim_time"}
    overrides["use_sim_time"] = ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)
    overrides["depth.enabled"] = ParameterValue(LaunchConfiguration("depth"), value_type=bool)
    if conf["cameras"].strip():
        cameras = overrides["cameras"] = camera_names(conf["cameras"])
    else:  # the parameters file's list (default: one unnamed camera)
        cameras = camera_names_in_params_file(conf["params_file"])
    depth = conf["depth"].strip().lower() in ("true", "1", "yes")
    # Shared memory large enough for camera images (see the XML); a profile the user already set wins.
    profile = os.path.join(share, "config", "perception_fastdds.xml")
    env = {"FASTRTPS_DEFAULT_PROFILES_FILE": profile} if os.path.exists(profile) and \
        "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ else {}
    return [Node(
        package=PACKAGE,
        executable="omg-seg-node",
        name="omg_seg",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        emulate_tty=True,
        additional_env=env,
        parameters=[params_file, overrides],
        remappings=camera_remappings(cameras, conf, depth),
    )]


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    default_params = os.path.join(share, "config", "perception.yaml")
    args = [DeclareLaunchArgument(name, default_value=default_params if default is None else default,
                                  description=desc) for name, (default, desc) in ARGUMENTS.items()]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="omg_seg_rviz",
        arguments=["-d", os.path.join(share, "config", "perception.rviz")],
        parameters=[{"use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool)}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    # the camera list decides the remappings, so the node is made once the arguments are known
    return LaunchDescription(args + [OpaqueFunction(function=_perception_node), rviz])
