"""Seeded frame generator: scene sampling + rendering + ground truth for every task.

`SynthGenerator(split, seed).frame(i)` is a pure function of (split, seed, i): the random stream of frame i is
``numpy.random.default_rng([seed, SPLIT_SEED_CODE[split], 0, i])`` (video sequences use ``[..., 1, k]``), so
frames can be generated in any order, in parallel, or again after an interruption, and splits never share scenes.

Ground truth conventions (per `SynthFrame`):
- ``panoptic`` int32 [H, W]: COCO-panoptic segment id per pixel, 0 = void. Things use their track id (1..999),
  stuff uses 1000 + stuff index (1000 floor, 1001 table, 1002 wall).
- ``semantic`` uint16 [H, W]: class id (things first, then stuff; `world.CLASS_NAMES`), 65535 = void.
- ``segments``: one `SegmentInfo` per segment id present; bbox is COCO xywh (x, y, width, height) in pixels;
  things carry their whole 3D box in the camera optical frame (``center_3d``, ``size_3d``, metres).
- ``depth`` float32 [H, W]: clean metric depth (z, metres; NaN = nothing drawn) and ``camera`` its intrinsics;
  `SynthFrame.sensor_depth()` gives the same depth through a depth-sensor noise model (depth_sensor.py).
Things whose visible area is below ``min_area`` pixels are dropped and their pixels become void (a sliver at the
image border is not a fair target for any task).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Optional

import numpy as np

from ...structures import SEMANTIC_IGNORE, Segments
from . import world
from .language import ThingRef, referring_phrases, stuff_phrase
from ...spatial.camera import PinholeCamera
from .depth_sensor import DepthNoise, object_boxes_3d, scene_camera, sensor_depth
from .render import STUFF_LABEL_BASE, Renderer
from .scene import Scene, SceneParams, sample_scene


@dataclass
class SegmentInfo:
    """One segment of a frame (thing or stuff). Attributes are None for stuff."""

    id: int                       # segment id in `SynthFrame.panoptic`
    class_id: int                 # world.CLASS_NAMES index (things first); COCO category id = class_id + 1
    is_thing: bool
    bbox: tuple[int, int, int, int]  # COCO xywh, pixels
    area: int
    track_id: int = 0             # persistent within a video sequence (= uid); 0 for stuff
    colour: Optional[str] = None
    size: Optional[str] = None
    shape: Optional[str] = None
    phrase: str = ""
    phrase_canonical: str = ""
    phrase_unique: bool = True
    center_3d: Optional[tuple[float, float, float]] = None  # things: box centre, optical frame, metres
    size_3d: Optional[tuple[float, float, float]] = None    # things: box extent along x, y, z (metres)

    @property
    def name(self) -> str:
        return world.CLASS_NAMES[self.class_id]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SynthFrame:
    rgb: np.ndarray               # uint8 [H, W, 3]
    panoptic: np.ndarray          # int32 [H, W], segment ids, 0 = void
    semantic: np.ndarray          # uint16 [H, W], class ids, 65535 = void
    segments: list[SegmentInfo]
    split: str = "train"
    seed: int = 0
    index: int = 0                # frame index (single frames) or frame index within the sequence (video)
    sequence: Optional[int] = None  # video sequence index, None for single frames
    meta: dict = field(default_factory=dict)
    depth: Optional[np.ndarray] = None    # float32 [H, W] clean metric depth (z, metres), NaN = nothing drawn
    camera: Optional[PinholeCamera] = None  # intrinsics of rgb and depth

    def sensor_depth(self, noise: Optional[DepthNoise] = None) -> np.ndarray:
        """`depth` through the depth-sensor model (depth_sensor.py), seeded by (split, seed, sequence, index):
        the same frame always gets the same noise, and no other random stream is touched."""
        if self.depth is None:
            raise ValueError("this frame has no depth")
        code = world.SPLIT_SEED_CODE[self.split]
        rng = np.random.default_rng([self.seed, code, 3, -1 if self.sequence is None else self.sequence, self.index]
                                    if self.sequence is not None else [self.seed, code, 3, self.index])
        return sensor_depth(self.depth, self.rgb, rng, noise or DepthNoise())

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.rgb.shape[0], self.rgb.shape[1]

    def masks(self) -> np.ndarray:
        """bool [N, H, W], one per entry of ``segments`` (same order)."""
        ids = np.array([s.id for s in self.segments], np.int32)
        return self.panoptic[None] == ids[:, None, None]

    def things(self) -> list[SegmentInfo]:
        return [s for s in self.segments if s.is_thing]

    def to_segments(self) -> Segments:
        """Ground truth as the project's result type (class ids = world class ids, track ids filled)."""
        return Segments(self.masks(), np.ones(len(self.segments)), [s.class_id for s in self.segments],
                        [s.name for s in self.segments], [s.is_thing for s in self.segments],
                        track_ids=[s.track_id for s in self.segments], task="ground_truth")


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Lens blur (cheaper than MSAA on a software rasteriser and softens aliased edges the same way)."""
    if sigma <= 0.05:
        return rgb
    import cv2

    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def frame_from_render(scene: Scene, rgb: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                      min_area: int = 10) -> tuple[np.ndarray, np.ndarray, list[SegmentInfo]]:
    """(panoptic int32 [H, W], semantic uint16 [H, W], segments) from a label buffer (see render.py)."""
    from scipy.ndimage import find_objects

    n_stuff = len(world.STUFF_CLASSES)
    counts = np.bincount(labels.ravel(), minlength=STUFF_LABEL_BASE + n_stuff)
    by_uid = {o.uid: o for o in scene.objects}
    keep = [u for u in by_uid if u < len(counts) and counts[u] >= min_area]
    dropped = [u for u in by_uid if u < len(counts) and 0 < counts[u] < min_area]
    panoptic = labels.astype(np.int32, copy=True)
    if dropped:
        panoptic[np.isin(panoptic, dropped)] = 0
    lut = np.full(STUFF_LABEL_BASE + n_stuff, SEMANTIC_IGNORE, np.uint16)
    for u in keep:
        lut[u] = world.class_id(by_uid[u].shape)
    for k in range(n_stuff):
        lut[STUFF_LABEL_BASE + k] = len(world.THING_CLASSES) + k
    semantic = lut[panoptic]
    slices = find_objects(panoptic)

    def bbox(label: int) -> tuple[int, int, int, int]:
        sy, sx = slices[label - 1]
        return (int(sx.start), int(sy.start), int(sx.stop - sx.start), int(sy.stop - sy.start))

    refs = []
    for u in keep:
        sy, sx = slices[u - 1]
        cols = (panoptic[sy, sx] == u).sum(0)
        refs.append(ThingRef(by_uid[u].colour, by_uid[u].shape, by_uid[u].size,
                             float(sx.start + (cols * np.arange(len(cols))).sum() / max(cols.sum(), 1))))
    phrases = referring_phrases(refs, rng)
    boxes_3d = object_boxes_3d(scene)
    segments = []
    for u, ph in zip(keep, phrases):
        o = by_uid[u]
        c3, s3 = boxes_3d[u]
        segments.append(SegmentInfo(u, world.class_id(o.shape), True, bbox(u), int(counts[u]), u, o.colour, o.size,
                                    o.shape, ph.text, ph.canonical, ph.unique, tuple(float(v) for v in c3),
                                    tuple(float(v) for v in s3)))
    for k, name in enumerate(world.STUFF_CLASSES):
        lab = STUFF_LABEL_BASE + k
        if counts[lab] > 0:
            p = stuff_phrase(name)
            segments.append(SegmentInfo(lab, len(world.THING_CLASSES) + k, False, bbox(lab), int(counts[lab]),
                                        phrase=p, phrase_canonical=p))
    return panoptic, semantic, segments


class SynthGenerator:
    """Deterministic frames and sequences of one split. One OpenGL context per generator (not thread-safe)."""

    def __init__(self, width: int = 320, height: int = 240, split: str = "train", seed: int = 0,
                 params: Optional[SceneParams] = None, renderer: Optional[Renderer] = None, min_area: int = 10):
        if split not in world.SPLIT_SEED_CODE:
            raise ValueError(f"unknown split '{split}'; known: {sorted(world.SPLIT_SEED_CODE)}")
        if width < 16 or height < 16:
            raise ValueError(f"image size must be at least 16x16, got {width}x{height}")
        self.width, self.height, self.split, self.seed, self.min_area = int(width), int(height), split, int(seed), min_area
        # a copy: the split fills in combos, which must not leak into the caller's params (or another split's)
        self.params = replace(params) if params else SceneParams()
        if not self.params.combos:
            self.params.combos = world.allowed_combos(split)
        if world.SPLIT_COMBO_MODE[split] == "include" and not self.params.require_combos:
            self.params.require_combos = sorted(world.HELD_OUT_COMBOS)
        self.renderer = renderer or Renderer(self.width, self.height)

    def rng(self, stream: int, index: int) -> np.random.Generator:
        if index < 0:
            raise ValueError(f"frame/sequence index must be >= 0, got {index}")
        return np.random.default_rng([self.seed, world.SPLIT_SEED_CODE[self.split], stream, int(index)])

    def scene(self, index: int) -> Scene:
        return sample_scene(self.rng(0, index), self.params)

    def render(self, scene: Scene, rng: np.random.Generator, index: int = 0, sequence: Optional[int] = None,
               blur: Optional[float] = None) -> SynthFrame:
        """Render ``scene`` and derive its ground truth; ``blur`` = lens blur sigma in pixels (random if None)."""
        rgb, labels = self.renderer.render(scene)
        depth = self.renderer.depth()
        rgb = _blur(rgb, float(rng.uniform(0.0, 0.8)) if blur is None else blur)
        panoptic, semantic, segments = frame_from_render(scene, rgb, labels, rng, self.min_area)
        return SynthFrame(rgb, panoptic, semantic, segments, self.split, self.seed, index, sequence, depth=depth,
                          camera=scene_camera(scene, self.width, self.height))

    def frame(self, index: int) -> SynthFrame:
        """Frame ``index`` of this split and seed (independent of any other call)."""
        rng = self.rng(0, index)
        scene = sample_scene(rng, self.params)
        return self.render(scene, rng, index)

    def sequence(self, index: int, length: int):
        """Yield the ``length`` frames of video sequence ``index`` (see video.py); track ids persist."""
        from .video import animate

        rng = self.rng(1, index)
        base = sample_scene(rng, self.params)
        blur = float(rng.uniform(0.0, 0.8))  # one camera per sequence: its focus does not flicker
        for t, scene in enumerate(animate(base, rng, length)):
            yield self.render(scene, rng, t, sequence=index, blur=blur)

    def close(self) -> None:
        self.renderer.release()
