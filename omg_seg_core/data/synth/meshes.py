"""Triangle meshes of the world's shapes, built once with numpy (no asset files needed).

Every mesh is in object space, z-up, resting on z = 0, with its main dimension = 1 (the object's scale in
metres multiplies it). A mesh is ``(vertices float32 [V, 6] = xyz + normal, indices uint32 [T*3])``;
triangles are counter-clockwise seen from outside. Texture coordinates are not needed: textured surfaces are
mapped by world position in the shader (tri-planar), so texture density stays constant in metres.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]
_SEGMENTS = 32  # around the axis; at 320x240 a large ball spans ~60 px, 32 facets keep its outline round


def _join(*meshes: Mesh) -> Mesh:
    verts, idx, base = [], [], 0
    for v, i in meshes:
        verts.append(v)
        idx.append(i + base)
        base += len(v)
    return np.concatenate(verts).astype(np.float32), np.concatenate(idx).astype(np.uint32)


def lathe(profile: list[tuple[float, float]], smooth_deg: float = 35.0, segments: int = _SEGMENTS) -> Mesh:
    """Revolve a (radius, z) polyline about the z axis.

    The profile runs bottom to top with the surface's outside on its right-hand side (e.g. (0,0) -> (r,0) ->
    (r,h) -> (0,h) for a closed cylinder). Bands meeting at an angle below ``smooth_deg`` share a smooth normal,
    sharper corners (rims) stay crisp.
    """
    p = np.asarray(profile, np.float64)
    t = np.diff(p, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    n = np.stack([t[:, 1], -t[:, 0]], 1)  # outward normal of each band in (r, z)
    cos_thr = np.cos(np.radians(smooth_deg))
    ang = np.linspace(0, 2 * np.pi, segments + 1)
    ca, sa = np.cos(ang), np.sin(ang)
    parts = []
    for b in range(len(t)):
        ends = []
        for k, nb in ((b, b - 1), (b + 1, b + 1)):
            nn = n[b].copy()
            if 0 <= nb < len(n) and np.dot(n[b], n[nb]) > cos_thr:
                nn = n[b] + n[nb]
                nn /= np.linalg.norm(nn)
            ends.append((p[k], nn))
        verts = []
        for (r, z), (nr, nz) in ends:
            verts.append(np.stack([r * ca, r * sa, np.full_like(ca, z), nr * ca, nr * sa, np.full_like(ca, nz)], 1))
        v = np.concatenate(verts)
        m = segments + 1
        i0 = np.arange(segments)
        quads = np.stack([i0, i0 + 1, i0 + m + 1, i0, i0 + m + 1, i0 + m], 1).reshape(-1)
        parts.append((v, quads))
    return _join(*parts)


def _circle_profile(cr: float, cz: float, rad: float, a0: float, a1: float, n: int) -> list[tuple[float, float]]:
    a = np.linspace(a0, a1, n)
    return [(cr + rad * np.cos(x), cz + rad * np.sin(x)) for x in a]


def box_mesh() -> Mesh:
    """Unit cube [-0.5, 0.5]^2 x [0, 1] with flat face normals."""
    verts, idx = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            nrm = np.zeros(3)
            nrm[axis] = sign
            u, w = [a for a in range(3) if a != axis]
            corners = []
            for du, dw in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                c = np.zeros(3)
                c[axis], c[u], c[w] = sign * 0.5, du * 0.5, dw * 0.5
                corners.append(c)
            corners = np.array(corners)
            # make the winding counter-clockwise seen from outside
            if np.dot(np.cross(corners[1] - corners[0], corners[2] - corners[0]), nrm) < 0:
                corners = corners[::-1]
            b = len(verts) * 4
            verts.append(np.concatenate([corners, np.tile(nrm, (4, 1))], 1))
            idx.append(np.array([0, 1, 2, 0, 2, 3]) + b)
    v = np.concatenate(verts)
    v[:, 2] += 0.5
    return v.astype(np.float32), np.concatenate(idx).astype(np.uint32)


def torus_mesh(major: float, minor: float, a0: float = 0.0, a1: float = 2 * np.pi, seg_u: int = _SEGMENTS,
               seg_v: int = 16) -> Mesh:
    """Torus (or a sector a0..a1 of it, for a mug handle) around the z axis, centred at the origin."""
    u = np.linspace(a0, a1, seg_u + 1)
    v = np.linspace(0, 2 * np.pi, seg_v + 1)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    nx, ny, nz = np.cos(vv) * np.cos(uu), np.cos(vv) * np.sin(uu), np.sin(vv)
    pos = np.stack([(major + minor * np.cos(vv)) * np.cos(uu), (major + minor * np.cos(vv)) * np.sin(uu), minor * nz], -1)
    verts = np.concatenate([pos, np.stack([nx, ny, nz], -1)], -1).reshape(-1, 6)
    m = seg_v + 1
    i, j = np.meshgrid(np.arange(seg_u), np.arange(seg_v), indexing="ij")
    a = (i * m + j).reshape(-1)
    quads = np.stack([a, a + m, a + m + 1, a, a + m + 1, a + 1], 1).reshape(-1)
    return verts.astype(np.float32), quads.astype(np.uint32)


def _transform(mesh: Mesh, rot: np.ndarray, shift: np.ndarray) -> Mesh:
    v, i = mesh
    out = v.copy()
    out[:, :3] = v[:, :3] @ rot.T + shift
    out[:, 3:] = v[:, 3:] @ rot.T
    return out, i


@lru_cache(maxsize=None)
def shape_mesh(shape: str) -> Mesh:
    """Mesh of a thing class (see world.THING_CLASSES) or 'quad' (unit square in z = 0) / 'cube'."""
    if shape in ("box", "cube"):
        return box_mesh()
    if shape == "ball":
        return lathe(_circle_profile(0.0, 0.5, 0.5, -np.pi / 2, np.pi / 2, 17), smooth_deg=60)
    if shape == "cylinder":
        return lathe([(0, 0), (0.33, 0), (0.33, 1.0), (0, 1.0)])
    if shape == "cone":
        return lathe([(0, 0), (0.42, 0), (0.0, 1.0)])
    if shape == "ring":
        v, i = torus_mesh(0.36, 0.12)
        v = v.copy()
        v[:, 2] += 0.12
        return v, i
    if shape == "bottle":
        prof = [(0, 0), (0.2, 0), (0.22, 0.03), (0.22, 0.55)] + _circle_profile(0.07, 0.55, 0.15, 0.0, np.pi / 2, 6)[1:]
        prof += [(0.075, 0.86), (0.085, 0.88), (0.085, 0.97), (0.0, 0.97)]
        return lathe(prof, smooth_deg=40)
    if shape == "mug":
        body = lathe([(0, 0), (0.36, 0), (0.38, 0.05), (0.38, 0.85), (0.33, 0.85), (0.33, 0.1), (0, 0.1)], smooth_deg=30)
        rot = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)  # torus plane xy -> xz
        handle = _transform(torus_mesh(0.21, 0.045, -np.pi / 2 - 0.2, np.pi / 2 + 0.2, 16, 10), rot, np.array([0.36, 0, 0.45]))
        return _join(body, handle)
    if shape == "quad":
        v = np.array([[-0.5, -0.5, 0, 0, 0, 1], [0.5, -0.5, 0, 0, 0, 1], [0.5, 0.5, 0, 0, 0, 1], [-0.5, 0.5, 0, 0, 0, 1]], np.float32)
        return v, np.array([0, 1, 2, 0, 2, 3], np.uint32)
    raise KeyError(f"no mesh for shape '{shape}'")


#: Footprint radius (object-space, x scale) used to keep objects from interpenetrating when placed.
FOOTPRINT: dict[str, float] = {"box": 0.72, "ball": 0.5, "cylinder": 0.33, "cone": 0.42, "ring": 0.48,
                               "bottle": 0.22, "mug": 0.62}
#: Height of each shape in object units (the carry animation lifts objects above the others' heights).
HEIGHT: dict[str, float] = {"box": 1.0, "ball": 1.0, "cylinder": 1.0, "cone": 1.0, "ring": 0.24, "bottle": 0.97, "mug": 0.85}
#: Cross-section radius of shapes that may lie on their side (the side rests on the surface).
LYING_RADIUS: dict[str, float] = {"cylinder": 0.33, "bottle": 0.22}
