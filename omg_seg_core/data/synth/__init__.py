"""Synthetic robot-workspace scenes (issue #3): seeded scene sampling, moderngl rendering, ground truth for every task.

Quick use::

    from omg_seg_core.data.synth import SynthGenerator
    gen = SynthGenerator(320, 240, split="train", seed=0)
    frame = gen.frame(0)            # SynthFrame: rgb, panoptic, semantic, segments (attributes, phrase, track id)
    for f in gen.sequence(0, 30):   # video with persistent track ids
        ...

CLI: ``python -m omg_seg_core.data.synth.generate --help``. Vocabulary: `world` and
config/vocabularies/robot_workspace.yaml.
"""
from .generator import SegmentInfo, SynthFrame, SynthGenerator
from .world import CLASS_NAMES, COLOUR_NAMES, HELD_OUT_COMBOS, SIZE_NAMES, STUFF_CLASSES, THING_CLASSES

__all__ = ["SynthGenerator", "SynthFrame", "SegmentInfo", "CLASS_NAMES", "THING_CLASSES", "STUFF_CLASSES",
           "COLOUR_NAMES", "SIZE_NAMES", "HELD_OUT_COMBOS"]
