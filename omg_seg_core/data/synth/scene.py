"""Scene descriptions of the robot workspace and their seeded sampling.

World frame: metres, z up, floor at z = 0; the table's front edge faces -y (towards the default camera), the wall
stands behind the table at y = ``wall_y``. A `Scene` is a plain description; `render.Renderer` draws it.
Sampling uses only the `numpy.random.Generator` passed in, so a seed fully determines a scene.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from . import world
from .meshes import FOOTPRINT, LYING_RADIUS
from .textures import BACKGROUNDS, SURFACE_TEXTURES


@dataclass
class ObjectSpec:
    """One thing. ``uid`` is its persistent track id (>= 1) within a scene or video sequence."""

    uid: int
    shape: str                      # world.THING_CLASSES
    colour: str                     # world.COLOUR_NAMES
    size: str                       # world.SIZE_NAMES
    scale: float                    # metres per object unit (size's nominal scale with jitter)
    position: np.ndarray            # float64 [3] world position of the base centre
    yaw: float                      # radians about z
    albedo: np.ndarray              # float32 [3] linear-ish 0..1 surface colour (named colour + small jitter)
    shininess: float = 32.0
    specular: float = 0.3
    aspect: tuple[float, float, float] = (1.0, 1.0, 1.0)  # box proportions (others stay 1)
    lying: bool = False             # cylinders and bottles may lie on their side (axis horizontal)
    support: int = 0                # uid of the box this object stands on (0 = the table)

    @property
    def radius(self) -> float:
        """Footprint radius in metres (for non-overlapping placement)."""
        r = max(FOOTPRINT[self.shape], 0.5) if self.lying else FOOTPRINT[self.shape]
        return r * self.scale * max(self.aspect[0], self.aspect[1])

    def model_matrix(self) -> np.ndarray:
        """float64 [4, 4]: object space (z-up, base at 0) -> world."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        m = np.eye(4)
        local = np.diag(np.asarray(self.aspect) * self.scale)
        shift = np.zeros(3)
        if self.lying:  # rotate the axis onto -y, centre it, and rest the side on the surface
            local = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]) @ local
            shift = np.array([0.0, 0.5, LYING_RADIUS[self.shape]]) * self.scale
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        m[:3, :3] = rot @ local
        m[:3, 3] = self.position + rot @ shift
        return m


@dataclass
class Surface:
    """A textured stuff surface: photo name, tint (multiplied), contrast (1 = photo as is), texture period (m)."""

    cls: str
    texture: str
    tint: np.ndarray
    contrast: float
    period: float
    rotation: float
    offset: np.ndarray
    stretch: bool = False  # backgrounds: one copy of the photo across ``period`` metres, not tiled


@dataclass
class Camera:
    eye: np.ndarray       # float64 [3]
    target: np.ndarray    # float64 [3]
    fov_y: float          # degrees
    roll: float = 0.0     # radians

    def view_matrix(self) -> np.ndarray:
        f = self.target - self.eye
        f = f / np.linalg.norm(f)
        up = np.array([np.sin(self.roll), 0.0, np.cos(self.roll)])
        s = np.cross(f, up)
        s /= np.linalg.norm(s)
        u = np.cross(s, f)
        m = np.eye(4)
        m[0, :3], m[1, :3], m[2, :3] = s, u, -f
        m[:3, 3] = -m[:3, :3] @ self.eye
        return m

    def projection_matrix(self, aspect: float, near: float = 0.05, far: float = 30.0) -> np.ndarray:
        t = 1.0 / np.tan(np.radians(self.fov_y) / 2)
        p = np.zeros((4, 4))
        p[0, 0], p[1, 1] = t / aspect, t
        p[2, 2], p[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
        p[3, 2] = -1.0
        return p


@dataclass
class Light:
    direction: np.ndarray   # float64 [3], unit vector pointing FROM the scene TOWARDS the light
    colour: np.ndarray      # float32 [3]
    intensity: float
    ambient: float


@dataclass
class Scene:
    objects: list[ObjectSpec]
    camera: Camera
    light: Light
    floor: Surface
    table: Surface
    wall: Surface
    table_size: tuple[float, float, float]   # width (x), depth (y), height (z) in metres; centred at x = y = 0
    wall_y: float
    exposure: float = 1.0
    noise: float = 0.01                       # camera noise sigma in 0..1 units
    seed: int = 0                             # drives the shader's noise pattern

    def with_objects(self, objects: list[ObjectSpec]) -> "Scene":
        return replace(self, objects=objects)


@dataclass
class SceneParams:
    """Ranges of the sampler (defaults tuned by looking at frames; see docs/synthetic_data.md)."""

    min_objects: int = 3
    max_objects: int = 10
    cam_distance: tuple[float, float] = (0.5, 1.05)  # closer than a whole-table view: objects 15-80 px tall
    cam_elevation_deg: tuple[float, float] = (30.0, 72.0)
    cam_azimuth_deg: tuple[float, float] = (-40.0, 40.0)
    fov_deg: tuple[float, float] = (48.0, 65.0)
    table_width: tuple[float, float] = (1.1, 1.8)
    table_depth: tuple[float, float] = (0.7, 1.0)
    table_height: tuple[float, float] = (0.7, 0.8)
    stack_prob: float = 0.35      # chance that a small object stands on top of a large upright box
    combos: list[tuple[str, str]] = field(default_factory=list)  # allowed (colour, shape); empty = all
    require_combos: list[tuple[str, str]] = field(default_factory=list)  # at least one object from these


def _surface(rng: np.random.Generator, cls: str) -> Surface:
    name = str(rng.choice(SURFACE_TEXTURES[cls]))
    if name in BACKGROUNDS:
        tint = np.clip(1.0 + rng.normal(0, 0.05, 3), 0.85, 1.1)
        return Surface(cls, name, tint.astype(np.float32), float(rng.uniform(0.8, 1.0)), float(rng.uniform(1.5, 3.0)),
                       0.0, rng.uniform(0, 1, 2), stretch=True)
    base = {"floor": (0.25, 0.75), "table": (0.35, 0.95), "wall": (0.55, 1.0)}[cls]
    hue = rng.uniform(0.75, 1.15, 3) * rng.uniform(*base)
    contrast = float(rng.uniform(0.15, 0.6) if cls == "table" else rng.uniform(0.3, 1.0))
    period = float(rng.uniform(0.4, 1.5) if cls != "wall" else rng.uniform(0.8, 2.5))
    return Surface(cls, name, np.clip(hue, 0.05, 1.2).astype(np.float32), contrast, period,
                   float(rng.uniform(0, 2 * np.pi)), rng.uniform(0, 1, 2))


def sample_object(rng: np.random.Generator, uid: int, combos: list[tuple[str, str]]) -> ObjectSpec:
    """An object of a random allowed (colour, shape) pair, size and pose; position is set by the caller."""
    colour, shape = combos[int(rng.integers(len(combos)))]
    size = world.SIZE_NAMES[int(rng.integers(len(world.SIZE_NAMES)))]
    scale = world.SIZES[size] * float(rng.uniform(0.9, 1.1))
    aspect = (1.0, 1.0, 1.0)
    if shape == "box":  # boxes vary in proportion; the main dimension stays the size's scale
        aspect = (1.0, float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.5, 1.0)))
    albedo = np.asarray(world.COLOURS[colour], np.float32) / 255.0
    albedo = np.clip(albedo * rng.uniform(0.92, 1.06) + rng.normal(0, 0.015, 3), 0.01, 1.0).astype(np.float32)
    glossy = bool(rng.random() < 0.5)
    lying = bool(shape in LYING_RADIUS and rng.random() < 0.2)
    return ObjectSpec(uid, shape, colour, size, scale, np.zeros(3), float(rng.uniform(0, 2 * np.pi)), albedo,
                      shininess=float(rng.uniform(40, 120) if glossy else rng.uniform(5, 20)),
                      specular=float(rng.uniform(0.25, 0.6) if glossy else rng.uniform(0.02, 0.12)), aspect=aspect,
                      lying=lying)


def place_objects(rng: np.random.Generator, objects: list[ObjectSpec], centre: np.ndarray, half: np.ndarray,
                  table_half: np.ndarray, table_h: float, tries: int = 60) -> list[ObjectSpec]:
    """Rejection-sample base positions in the box centre +- half (clipped to the table) without overlaps.

    Objects that find no free spot after ``tries`` attempts are dropped (clutter stays physically plausible).
    """
    placed: list[ObjectSpec] = []
    for ob in objects:
        lo = np.maximum(centre - half, -table_half + ob.radius)
        hi = np.minimum(centre + half, table_half - ob.radius)
        if np.any(hi <= lo):
            continue
        for _ in range(tries):
            xy = rng.uniform(lo, hi)
            # allow touching (occlusion and contact are wanted) but never interpenetration
            if all(np.hypot(*(xy - p.position[:2])) >= (ob.radius + p.radius) * 1.02 for p in placed):
                ob.position = np.array([xy[0], xy[1], table_h])
                placed.append(ob)
                break
    return placed


def stack_objects(rng: np.random.Generator, placed: list[ObjectSpec], combos: list[tuple[str, str]],
                  prob: float) -> list[ObjectSpec]:
    """With probability ``prob`` put one small upright object on top of a large upright box (more occlusion and
    3-D variety). Returns the new objects; their ``support`` is the box's uid (caller renumbers uids)."""
    boxes = [o for o in placed if o.shape == "box" and o.size == "large"]
    if not boxes or rng.random() >= prob:
        return []
    box = boxes[int(rng.integers(len(boxes)))]
    small = [c for c in combos if c[1] != "ring"]  # a ring on a box reads as a flat decal at 320x240
    ob = sample_object(rng, 1000 + box.uid, small or combos)
    ob.size, ob.lying, ob.aspect = "small", False, (1.0, 1.0, 1.0)
    ob.scale = world.SIZES["small"] * float(rng.uniform(0.9, 1.0))
    top_half = 0.5 * min(box.aspect[0], box.aspect[1]) * box.scale
    if ob.radius > top_half:  # would overhang: skip rather than float
        return []
    ob.position = box.position + np.array([0.0, 0.0, box.aspect[2] * box.scale])
    ob.support = box.uid
    return [ob]


def sample_camera(rng: np.random.Generator, params: SceneParams, target: np.ndarray) -> Camera:
    d = rng.uniform(*params.cam_distance)
    el = np.radians(rng.uniform(*params.cam_elevation_deg))
    az = np.radians(rng.uniform(*params.cam_azimuth_deg))
    # azimuth 0 = camera in front of the table (-y), looking towards the wall (+y)
    eye = target + d * np.array([np.sin(az) * np.cos(el), -np.cos(az) * np.cos(el), np.sin(el)])
    return Camera(eye, target.copy(), float(rng.uniform(*params.fov_deg)), float(rng.normal(0, 0.03)))


def sample_scene(rng: np.random.Generator, params: SceneParams | None = None) -> Scene:
    """A random workspace scene: table, floor, wall, light, camera and 3..10 things on the table."""
    params = params or SceneParams()
    combos = params.combos or [(c, s) for s in world.THING_CLASSES for c in world.COLOUR_NAMES]
    tw, td, th = (float(rng.uniform(*params.table_width)), float(rng.uniform(*params.table_depth)),
                  float(rng.uniform(*params.table_height)))
    table_half = np.array([tw / 2, td / 2])
    centre = np.array([rng.uniform(-0.15, 0.15) * tw, rng.uniform(-0.1, 0.1) * td])
    target = np.array([centre[0], centre[1], th])
    cam = sample_camera(rng, params, target)
    # spread objects over the part of the table the camera sees (closer cameras see less)
    view_scale = np.linalg.norm(cam.eye - target) / 0.95 * np.tan(np.radians(cam.fov_y) / 2) / np.tan(np.radians(28))
    half = np.array([0.42, 0.32]) * view_scale
    n = int(rng.integers(params.min_objects, params.max_objects + 1))
    objects = [sample_object(rng, i + 1, combos) for i in range(n)]
    if params.require_combos and not any((o.colour, o.shape) in params.require_combos for o in objects):
        colour, shape = params.require_combos[int(rng.integers(len(params.require_combos)))]
        objects[0] = sample_object(rng, 1, [(colour, shape)])
    objects = place_objects(rng, objects, centre, half, table_half, th)
    objects += stack_objects(rng, objects, combos, params.stack_prob)
    new_uid = {o.uid: i + 1 for i, o in enumerate(objects)}  # consecutive track ids after drops
    for o in objects:
        o.uid, o.support = new_uid[o.uid], new_uid.get(o.support, 0)
    el = np.radians(rng.uniform(35, 75))
    az = rng.uniform(0, 2 * np.pi)
    light = Light(np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)]),
                  np.clip(np.array([1.0, rng.uniform(0.88, 1.0), rng.uniform(0.75, 1.05)]), 0, 1.05).astype(np.float32),
                  float(rng.uniform(0.7, 1.2)), float(rng.uniform(0.25, 0.5)))
    return Scene(objects, cam, light, _surface(rng, "floor"), _surface(rng, "table"), _surface(rng, "wall"),
                 (tw, td, th), float(td / 2 + rng.uniform(0.3, 1.5)), float(rng.uniform(0.85, 1.2)),
                 float(rng.uniform(0.0, 0.025)), int(rng.integers(1 << 30)))
