"""omg_seg_ros: ament_python package (ROS 2 node) + the ROS-free library omg_seg_core, installed together."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "omg_seg_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["omg_seg_core", "omg_seg_core.*", "omg_seg_ros", "omg_seg_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/vocabularies", glob("config/vocabularies/*.yaml")),
        (f"share/{PACKAGE}/models", glob("models/*.pth") + glob("models/*.md")),
        (f"share/{PACKAGE}/data/samples/robot_scene", glob("data/samples/robot_scene/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="omg-seg-ros developers",
    maintainer_email="omg-seg-ros@example.com",
    description="One OMG-Seg model for panoptic, instance, semantic, video, prompt and text segmentation in ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "omg-seg-node = omg_seg_ros.node:main",
            "omg-seg-train = omg_seg_core.cli.train:main",
            "omg-seg-export = omg_seg_core.cli.export:main",
            "omg-seg-eval-synth = omg_seg_core.cli.eval_synth:main",
            "omg-seg-eval = omg_seg_ros.cli.bag_eval:main",
            "omg-seg-eval-fleet = omg_seg_ros.cli.fleet_eval:main",
            "omg-seg-make-bag = omg_seg_ros.cli.make_bag:main",
            "omg-seg-demo = omg_seg_ros.cli.demo:main",
        ],
    },
)
