"""The vocabulary of the synthetic robot workspace: thing shapes, stuff surfaces, named colours, sizes.

Class ids follow the project contract (docs/CONTRACTS.md): things first, then stuff, in the order of
`config/vocabularies/robot_workspace.yaml` (`THING_CLASSES` + `STUFF_CLASSES` below; a test keeps both equal).
COCO-panoptic files written by `omg_seg_core.data.coco_panoptic` use category id = class id + 1.

Held-out (colour, shape) combinations never appear in the ``train`` split, so evaluation can measure whether a
model composes a colour it has seen with a shape it has seen into a combination it has not.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omg_seg_core.config import DATA_ROOT

#: Thing shapes in class-id order (0..6). The canonical (first) name is what phrases use.
THING_CLASSES: tuple[str, ...] = ("box", "ball", "cylinder", "cone", "ring", "bottle", "mug")
#: Stuff surfaces in class-id order (7..9).
STUFF_CLASSES: tuple[str, ...] = ("floor", "table", "wall")
#: Every class, things first then stuff: index = class id.
CLASS_NAMES: tuple[str, ...] = THING_CLASSES + STUFF_CLASSES

#: Synonyms written to the vocabulary YAML (comma-separated, canonical first) and used by phrase templates.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "box": ("box", "cube", "block"),
    "ball": ("ball", "sphere"),
    "cylinder": ("cylinder", "can"),
    "cone": ("cone",),
    "ring": ("ring", "torus", "donut"),
    "bottle": ("bottle",),
    "mug": ("mug", "cup"),
    "floor": ("floor", "ground"),
    "table": ("table", "desk"),
    "wall": ("wall",),
}

#: Named colours with the sRGB albedo used for rendering (0-255). Chosen to stay distinguishable under the
#: generator's lighting range (white vs. gray and orange vs. brown were the confusable pairs when checked).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 25, 25),
    "green": (30, 150, 45),
    "blue": (25, 60, 210),
    "yellow": (235, 205, 30),
    "orange": (245, 120, 15),
    "purple": (115, 35, 160),
    "pink": (245, 120, 180),
    "brown": (105, 62, 30),
    "white": (235, 235, 230),
    "black": (22, 22, 24),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

#: Sizes: physical scale (metres, the object's main dimension) before per-object jitter of +-10 %.
SIZES: dict[str, float] = {"small": 0.055, "large": 0.11}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)

#: (colour, shape) pairs that never occur in the training split. Every colour and every shape in here also
#: occurs in training with other partners, so the combination (not its parts) is what is new.
HELD_OUT_COMBOS: frozenset[tuple[str, str]] = frozenset({
    ("red", "ball"),
    ("blue", "mug"),
    ("green", "cone"),
    ("yellow", "box"),
    ("purple", "ring"),
    ("orange", "bottle"),
})

#: Split names -> how held-out combinations are treated:
#: "exclude" = never sampled; "include" = sampled like the others and every scene shows at least one;
#: "only" = every thing is a held-out combination.
SPLIT_COMBO_MODE: dict[str, str] = {"train": "exclude", "val": "exclude", "heldout": "include", "novel": "only"}
#: Distinct integer per split mixed into every random seed, so scenes of different splits never coincide even
#: for equal user seeds (held-out scenes come from seeds never used in training).
SPLIT_SEED_CODE: dict[str, int] = {"train": 0, "val": 1, "heldout": 2, "novel": 3}


def class_id(name: str) -> int:
    """Class id of a canonical class name (things first, then stuff)."""
    try:
        return CLASS_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown class '{name}'; known: {list(CLASS_NAMES)}") from None


def is_thing_class(cid: int) -> bool:
    return 0 <= cid < len(THING_CLASSES)


def allowed_combos(split: str) -> list[tuple[str, str]]:
    """(colour, shape) pairs a split may sample, in a fixed order (deterministic sampling)."""
    if split not in SPLIT_COMBO_MODE:
        raise ValueError(f"unknown split '{split}'; known: {sorted(SPLIT_COMBO_MODE)}")
    mode = SPLIT_COMBO_MODE[split]
    every = [(c, s) for s in THING_CLASSES for c in COLOUR_NAMES]
    if mode == "exclude":
        return [p for p in every if p not in HELD_OUT_COMBOS]
    if mode == "only":
        return [p for p in every if p in HELD_OUT_COMBOS]
    return every


def vocabulary_path() -> Path:
    """The shipped vocabulary file for this world (things then stuff, synonyms comma-separated)."""
    return DATA_ROOT / "config" / "vocabularies" / "robot_workspace.yaml"


def vocabulary_lists() -> tuple[list[str], list[str]]:
    """(things, stuff) as written to the YAML: each entry 'canonical,synonym,...'."""
    return ([",".join(SYNONYMS[n]) for n in THING_CLASSES], [",".join(SYNONYMS[n]) for n in STUFF_CLASSES])


@dataclass(frozen=True)
class Category:
    """One COCO-panoptic category of this world."""

    id: int          # COCO category id = class id + 1
    name: str
    isthing: bool

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "isthing": int(self.isthing), "supercategory": "thing" if self.isthing else "stuff"}


CATEGORIES: tuple[Category, ...] = tuple(Category(i + 1, n, i < len(THING_CLASSES)) for i, n in enumerate(CLASS_NAMES))
