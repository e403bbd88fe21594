"""Video sequences: objects slide, get carried out of view and brought back, the camera orbits and pans.

`animate(base, rng, length)` turns one sampled `Scene` into ``length`` per-frame scenes. Object uids (= ground-truth
track ids) never change, so a carried object that leaves the image and comes back keeps its id: the tracker must
re-identify it. Motion types per object:
- static (about half of them);
- sliding on the table at 1-3 cm/frame, bouncing off the table edge and off other objects (never interpenetrating);
- carried ("pick and place", at least one object per sequence when length >= 8): lifted above everything (it then
  occludes what it passes over), moved far sideways out of the camera's view, held there for a while, brought back
  and set down at a free spot. A second carried object (in some sequences) may instead depart for good (its track
  ends) or arrive from outside the view (its track starts mid-sequence).
The camera orbits by up to +-15 degrees and pans its target a few centimetres, so objects near the border also
leave and re-enter the image.
"""
from __future__ import annotations

import copy

import numpy as np

from .meshes import HEIGHT
from .scene import Camera, ObjectSpec, Scene


def _free(xy: np.ndarray, ob: ObjectSpec, others: list[ObjectSpec]) -> bool:
    return all(np.hypot(*(xy - o.position[:2])) >= (ob.radius + o.radius) * 1.02 for o in others if o is not ob)


def _smooth(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)


class _Carry:
    """Piecewise path of a carried object: lift, move out, hold out of view, bring back, lower.

    ``mode``: "round_trip" (all phases: exit and re-entry), "depart" (never comes back: the track ends) or "arrive"
    (out of view from frame 0, brought in and set down at ``t0``: the track starts mid-sequence).
    """

    def __init__(self, start: np.ndarray, away: np.ndarray, lift: float, t0: int, length: int, mode: str = "round_trip"):
        # phases in frames: [t0, t1) lift, [t1, t2) out, [t2, t3) hold out of view, [t3, t4) back, [t4, t5) lower
        span = max(length - t0 - 1, 6)
        if mode == "arrive":  # only the last two phases, starting at t0
            cuts = np.round(np.cumsum([0.3, 0.2]) * span).astype(int) + t0
            self.t = [-3, -2, -1, t0, *cuts.tolist()]
        else:
            cuts = np.round(np.cumsum([0.12, 0.22, 0.22, 0.22, 0.12]) * span).astype(int) + t0
            self.t = [t0, *cuts.tolist()]
            if mode == "depart":
                self.t[3:] = [1 << 30] * 3
        self.mode = mode
        self.start, self.away, self.lift = start.copy(), away.copy(), lift
        self.end = start.copy()

    def position(self, f: int) -> np.ndarray:
        t0, t1, t2, t3, t4, t5 = self.t
        up = self.start + np.array([0, 0, self.lift])
        up_end = self.end + np.array([0, 0, self.lift])
        if f < t0:
            return self.start
        if f < t1:
            return self.start + np.array([0, 0, self.lift * _smooth((f - t0) / max(t1 - t0, 1))])
        if f < t2:
            return up + (self.away - up) * _smooth((f - t1) / max(t2 - t1, 1))
        if f < t3:
            return self.away
        if f < t4:
            return self.away + (up_end - self.away) * _smooth((f - t3) / max(t4 - t3, 1))
        if f < t5:
            return up_end - np.array([0, 0, self.lift * _smooth((f - t4) / max(t5 - t4, 1))])
        return self.end


def animate(base: Scene, rng: np.random.Generator, length: int) -> list[Scene]:
    """``length`` scenes of one sequence (deterministic given ``rng``'s state)."""
    if length < 1:
        raise ValueError(f"sequence length must be >= 1, got {length}")
    objs = [copy.deepcopy(o) for o in base.objects]
    tw, td, th = base.table_size
    half = np.array([tw / 2, td / 2])
    n = len(objs)
    kinds = rng.choice(["static", "slide"], size=n, p=[0.5, 0.5]).tolist()
    # stacks stay put: the object on top and the box under it
    stacked = {o.uid for o in objs if o.support} | {o.support for o in objs if o.support}
    movable = [i for i, o in enumerate(objs) if o.uid not in stacked]
    for i, o in enumerate(objs):
        if o.uid in stacked:
            kinds[i] = "static"
    carried: dict[int, _Carry] = {}
    if movable and length >= 8:
        n_carry = 1 + int(n >= 5 and rng.random() < 0.6)
        cam_right = np.cross(base.camera.target - base.camera.eye, [0, 0, 1])
        cam_right /= np.linalg.norm(cam_right)
        dist = np.linalg.norm(base.camera.target - base.camera.eye)
        for j, i in enumerate(rng.choice(movable, size=min(n_carry, len(movable)), replace=False).tolist()):
            kinds[i] = "carry"
            # the first carried object always comes back (every sequence has an exit and re-entry)
            mode = "round_trip" if j == 0 else str(rng.choice(["round_trip", "depart", "arrive"]))
            side = 1.0 if rng.random() < 0.5 else -1.0
            # far enough sideways to be outside any sampled field of view (<= 65 deg + 15 deg orbit)
            away = objs[i].position + cam_right * side * (1.6 * dist + 0.4) + np.array([0, 0, 0.35])
            lift = max(HEIGHT[o.shape] * o.scale for o in objs) + 0.08  # above every other object
            t0 = int(rng.integers(0, max(length // 6, 1))) if mode != "arrive" else int(rng.integers(length // 6, length // 3 + 1))
            carried[i] = _Carry(objs[i].position, away, lift, t0, length, mode)
    vel = [np.zeros(2) for _ in objs]
    for i, k in enumerate(kinds):
        if k == "slide":
            a = rng.uniform(0, 2 * np.pi)
            vel[i] = rng.uniform(0.01, 0.03) * np.array([np.cos(a), np.sin(a)])
    spin = rng.uniform(-0.08, 0.08, n)
    orbit_amp, orbit_freq, orbit_phase = np.radians(rng.uniform(4, 15)), rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi)
    pan = rng.uniform(-0.06, 0.06, 2)

    scenes = []
    for f in range(length):
        on_table = [o for i, o in enumerate(objs) if i not in carried or carried[i].position(f)[2] <= th + 1e-6]
        on_table = [o for o in on_table if not o.support]  # stacked objects' footprints lie inside their box's
        for i, o in enumerate(objs):
            if i in carried:
                c = carried[i]
                if f == c.t[3]:  # choose where to set it down now that everything else has moved
                    c.end = _landing(rng, o, c.start, half, th, [x for x in on_table if x is not o])
                o.position = c.position(f).astype(np.float64)
                continue
        # obstacles for sliding objects: what stands on the table, plus the landing spots of returning objects
        obstacles = list(on_table)
        for i, c in carried.items():
            if c.t[3] <= f and all(objs[i] is not x for x in on_table):
                ghost = copy.copy(objs[i])
                ghost.position = c.end
                obstacles.append(ghost)
        for i, o in enumerate(objs):
            if i in carried:
                continue
            if kinds[i] == "slide" and f > 0:
                step = o.position[:2] + vel[i]
                lim = half - o.radius
                for ax in range(2):
                    if abs(step[ax]) > lim[ax]:
                        vel[i][ax] = -vel[i][ax]
                        step[ax] = o.position[ax] + vel[i][ax]
                if _free(step, o, obstacles) and np.all(np.abs(step) <= lim):
                    o.position = np.array([step[0], step[1], o.position[2]])
                else:
                    vel[i] = -vel[i]
                o.yaw += spin[i]
        ang = orbit_amp * np.sin(2 * np.pi * orbit_freq * f / max(length, 1) + orbit_phase)
        scenes.append(base.with_objects([copy.copy(o) for o in objs]))
        scenes[-1].seed = base.seed + f  # sensor noise changes every frame; the rest of the look stays
        scenes[-1].camera = _orbit(base.camera, ang, pan * f / max(length - 1, 1))
        for o in scenes[-1].objects:
            o.position = o.position.copy()
    return scenes


def _landing(rng: np.random.Generator, ob: ObjectSpec, start: np.ndarray, half: np.ndarray, th: float,
             others: list[ObjectSpec]) -> np.ndarray:
    """Where a carried object is put down: its old spot if still free, else a random free spot on the table."""
    if _free(start[:2], ob, others):
        return start.copy()
    lim = half - ob.radius
    for _ in range(100):
        xy = rng.uniform(-lim, lim) * 0.6
        if _free(xy, ob, others):
            return np.array([xy[0], xy[1], th])
    return start.copy()  # cluttered table: accept touching rather than vanish


def _orbit(cam: Camera, angle: float, pan: np.ndarray) -> Camera:
    c, s = np.cos(angle), np.sin(angle)
    rel = cam.eye - cam.target
    rel = np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1], rel[2]])
    target = cam.target + np.array([pan[0], pan[1], 0.0])
    return Camera(target + rel, target, cam.fov_y, cam.roll)
