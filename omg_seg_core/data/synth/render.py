"""Offscreen OpenGL renderer of `Scene`s with moderngl (headless EGL; Mesa llvmpipe on CPU-only machines).

Per frame two passes share one draw list:
1. shadow map: depth from the directional light (orthographic, 512^2, hardware-filtered PCF);
2. colour + labels: Blinn-Phong shading in linear space with PCF shadows, photo textures mapped tri-planar by world
   position, exposure, gamma and per-pixel camera noise (all in the shader: numpy post-processing would cost more
   than the rendering at 320x240). A second render target receives each draw's label (thing uid, or
   STUFF_LABEL_BASE + stuff index) as float, so instance masks are exact (no blending at edges) and align with the
   colour pixels by construction.
Anti-aliasing comes from the generator's lens blur (MSAA would blend ids in the label target).

Needs an EGL driver: on Debian `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libgles2`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .meshes import shape_mesh
from .scene import Scene, Surface
from .textures import texture_image

#: Near and far planes of the camera projection (Camera.projection_matrix's defaults), for linearising depth.
NEAR_M, FAR_M = 0.05, 30.0
#: Labels in the label buffer: 0 = nothing drawn, 1..999 = thing uid, STUFF_LABEL_BASE + k = world.STUFF_CLASSES[k].
STUFF_LABEL_BASE = 1000
EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri libgles2"

_VS = """
#version 330
uniform mat4 mvp; uniform mat4 model; uniform mat3 normal_mat; uniform mat4 light_vp;
in vec3 in_pos; in vec3 in_normal;
out vec3 v_world; out vec3 v_normal; out vec4 v_light;
void main() {
    vec4 w = model * vec4(in_pos, 1.0);
    v_world = w.xyz; v_normal = normal_mat * in_normal; v_light = light_vp * w;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""
_FS = """
#version 330
uniform vec3 light_dir; uniform vec3 light_col; uniform float ambient; uniform vec3 eye;
uniform vec3 albedo; uniform float shininess; uniform float specular;
uniform bool use_tex; uniform sampler2D tex; uniform vec3 tint; uniform float contrast; uniform float period;
uniform float rot; uniform vec2 offset; uniform bool stretch; uniform float tex_aspect; uniform vec3 tex_mean;
uniform sampler2DShadow shadow_map; uniform float shadow_res; uniform float exposure; uniform float noise; uniform float seed;
uniform float label;
in vec3 v_world; in vec3 v_normal; in vec4 v_light;
layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_label;
float hash(vec2 p) { return fract(sin(dot(p, vec2(12.9898, 78.233)) + seed) * 43758.5453); }
void main() {
    vec3 n = normalize(v_normal);
    vec3 base = albedo * albedo;   // gamma 2.0 instead of 2.2: pow() is costly on a software rasteriser
    if (use_tex) {
        vec3 an = abs(n); vec2 uv;
        if (an.z >= an.x && an.z >= an.y) uv = v_world.xy; else if (an.y >= an.x) uv = vec2(v_world.x, -v_world.z);
        else uv = vec2(v_world.y, -v_world.z);
        float c = cos(rot), s = sin(rot);
        if (!stretch) uv = mat2(c, s, -s, c) * uv;
        uv = uv / period; uv.y *= tex_aspect; uv += offset;
        vec3 t = texture(tex, uv).rgb;
        vec3 a = clamp(mix(tex_mean, t, contrast) * tint, 0.0, 1.0);
        base = a * a;
    }
    vec3 p = v_light.xyz / v_light.w * 0.5 + 0.5;
    // 4 hardware-bilinear PCF taps = a soft 3x3-texel penumbra at a third of the cost of 9 taps
    float bias = 0.0008 + 0.0015 * (1.0 - max(dot(n, light_dir), 0.0));
    vec2 d = vec2(0.75 / shadow_res);
    float lit = 0.25 * (texture(shadow_map, vec3(p.xy + vec2(-d.x, -d.y), p.z - bias))
        + texture(shadow_map, vec3(p.xy + vec2(d.x, -d.y), p.z - bias))
        + texture(shadow_map, vec3(p.xy + vec2(-d.x, d.y), p.z - bias))
        + texture(shadow_map, vec3(p.xy + vec2(d.x, d.y), p.z - bias)));
    if (p.x < 0.0 || p.x > 1.0 || p.y < 0.0 || p.y > 1.0) lit = 1.0;
    float diff = max(dot(n, light_dir), 0.0);
    vec3 v = normalize(eye - v_world);
    float spec = pow(max(dot(n, normalize(light_dir + v)), 0.0), shininess) * specular * step(0.0, diff);
    vec3 col = base * (ambient * vec3(0.9, 0.95, 1.0) + diff * lit * light_col) + spec * lit * light_col;
    col = sqrt(clamp(col * exposure, 0.0, 1.0));
    col += (hash(gl_FragCoord.xy) - 0.5) * 3.46 * noise;   // uniform noise with std = noise
    f_color = vec4(col, 1.0);
    f_label = label;
}
"""
_DEPTH_VS = """
#version 330
uniform mat4 mvp; in vec3 in_pos;
void main() { gl_Position = mvp * vec4(in_pos, 1.0); }
"""
_DEPTH_FS = """
#version 330
void main() {}
"""


@dataclass
class DrawItem:
    mesh: str
    model: np.ndarray                # float64 [4, 4]
    label: int                       # value written to the label buffer
    albedo: np.ndarray = None        # float32 [3] sRGB 0..1 (things)
    surface: Optional[Surface] = None  # textured stuff
    shininess: float = 16.0
    specular: float = 0.05


def _trs(t, scale) -> np.ndarray:
    m = np.diag([*scale, 1.0])
    m[:3, 3] = t
    return m


def draw_list(scene: Scene) -> list[DrawItem]:
    """Floor, wall, table (top + legs) and every object, with their labels."""
    from .world import STUFF_CLASSES

    lab = {c: STUFF_LABEL_BASE + i for i, c in enumerate(STUFF_CLASSES)}
    tw, td, th = scene.table_size
    top = 0.04
    items = [DrawItem("quad", _trs((0, 0, 0), (30, 30, 1)), lab["floor"], surface=scene.floor),
             DrawItem("quad", _trs((0, scene.wall_y, 0), (1, 1, 1)) @ _rot_x(np.pi / 2) @ np.diag([30, 8, 1, 1]),
                      lab["wall"], surface=scene.wall),
             DrawItem("cube", _trs((0, 0, th - top), (tw, td, top)), lab["table"], surface=scene.table, specular=0.15)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            items.append(DrawItem("cube", _trs((sx * (tw / 2 - 0.06), sy * (td / 2 - 0.06), 0), (0.05, 0.05, th - top)),
                                  lab["table"], surface=scene.table))
    things = [DrawItem(ob.shape, ob.model_matrix(), ob.uid, albedo=ob.albedo, shininess=ob.shininess,
                       specular=ob.specular) for ob in scene.objects]
    # near-to-far order (things, table, floor, wall): the early depth test then skips shading hidden pixels
    return things + items[2:] + items[:2]


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    m = np.eye(4)
    m[1:3, 1:3] = [[c, -s], [s, c]]
    return m


def _ortho(half: float, near: float, far: float) -> np.ndarray:
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 1.0 / half
    m[2, 2], m[2, 3] = -2.0 / (far - near), -(far + near) / (far - near)
    return m


def _f4(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(m.T, dtype="f4").tobytes()  # GLSL matrices are column-major


def _load_triton_first() -> None:
    """Import triton (if installed) BEFORE the EGL context exists. triton bundles its own LLVM; torch imports it
    lazily (torchvision, timm and torch._dynamo do), and loading it after Mesa's llvmpipe has initialised its LLVM
    segfaults the process. Loaded first, both coexist (checked: frames render identically either way)."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401, PLC0415
        except Exception:  # noqa: BLE001  (a broken triton is torch's problem, not the renderer's)
            pass


class Renderer:
    """Renders `Scene`s to (rgb uint8 [H, W, 3], labels int32 [H, W]). One OpenGL context per instance."""

    def __init__(self, width: int = 320, height: int = 240, shadow_size: int = 512):
        try:
            import moderngl
        except ImportError as e:
            raise RuntimeError("the synthetic renderer needs the 'moderngl' package (pip install moderngl)") from e
        _load_triton_first()
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as e:
            raise RuntimeError(
                f"cannot create a headless OpenGL (EGL) context for the synthetic renderer: {e}. "
                f"On Debian/Ubuntu install Mesa's EGL: apt-get install -y {EGL_PACKAGES}") from e
        self.size = (int(width), int(height))
        ctx = self.ctx
        self.prog = ctx.program(vertex_shader=_VS, fragment_shader=_FS)
        self.depth_prog = ctx.program(vertex_shader=_DEPTH_VS, fragment_shader=_DEPTH_FS)
        self.shadow_tex = ctx.depth_texture((shadow_size, shadow_size))
        self.shadow_tex.compare_func = "<="
        self.shadow_tex.filter = (moderngl.LINEAR, moderngl.LINEAR)
        self.shadow_fbo = ctx.framebuffer(depth_attachment=self.shadow_tex)
        w, h = self.size
        # colour and label in one pass (multiple render targets): same rasterisation, so masks align exactly
        # with the colour image; no MSAA because a resolved label buffer would blend ids at edges
        self.fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer((w, h), 4), ctx.renderbuffer((w, h), 1, dtype="f4")],
                                   depth_attachment=ctx.depth_renderbuffer((w, h)))
        self._vaos: dict[tuple[str, str], object] = {}
        self._textures: dict[str, tuple] = {}
        self.prog["shadow_map"].value = 1
        self.prog["shadow_res"].value = float(shadow_size)
        self.prog["tex"].value = 0

    def _vao(self, prog_name: str, mesh: str):
        key = (prog_name, mesh)
        if key not in self._vaos:
            v, i = shape_mesh("box" if mesh == "cube" else mesh)
            vbo, ibo = self.ctx.buffer(v.tobytes()), self.ctx.buffer(i.tobytes())
            if prog_name == "main":
                self._vaos[key] = self.ctx.vertex_array(self.prog, [(vbo, "3f 3f", "in_pos", "in_normal")], index_buffer=ibo)
            else:
                self._vaos[key] = self.ctx.vertex_array(self.depth_prog, [(vbo, "3f 12x", "in_pos")], index_buffer=ibo)
        return self._vaos[key]

    def _texture(self, name: str) -> tuple:
        if name not in self._textures:
            import moderngl

            img = texture_image(name)
            t = self.ctx.texture((img.shape[1], img.shape[0]), 3, np.ascontiguousarray(img).tobytes())
            t.build_mipmaps()
            t.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
            self._textures[name] = (t, img.shape[1] / img.shape[0], tuple(img.reshape(-1, 3).mean(0) / 255.0))
        return self._textures[name]

    def render(self, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
        """rgb uint8 [H, W, 3] and labels int32 [H, W] (0 = none, uid for things, STUFF_LABEL_BASE + k for stuff)."""
        import moderngl

        ctx = self.ctx
        w, h = self.size
        items = draw_list(scene)
        vp = scene.camera.projection_matrix(w / h) @ scene.camera.view_matrix()
        tw, td, th = scene.table_size
        centre = np.array([0.0, 0.0, th])
        light_vp = _ortho(max(tw, td) / 2 + 0.35, 0.5, 8.0) @ _look_at(centre + scene.light.direction * 4.0, centre)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)

        self.shadow_fbo.use()
        self.shadow_fbo.clear(depth=1.0)
        for it in items:
            if it.mesh == "quad":  # floor and wall receive shadows but cast none the camera could see
                continue
            self.depth_prog["mvp"].write(_f4(light_vp @ it.model))
            self._vao("depth", it.mesh).render()

        self.fbo.use()
        self.fbo.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)  # label attachment cleared to 0 = nothing
        p = self.prog
        p["light_vp"].write(_f4(light_vp))
        p["light_dir"].value = tuple(scene.light.direction)
        p["light_col"].value = tuple(scene.light.colour * scene.light.intensity)
        p["ambient"].value = scene.light.ambient
        p["eye"].value = tuple(scene.camera.eye)
        p["exposure"].value = scene.exposure
        p["noise"].value = scene.noise
        p["seed"].value = float(scene.seed % 9973)
        self.shadow_tex.use(1)
        for it in items:
            p["mvp"].write(_f4(vp @ it.model))
            p["model"].write(_f4(it.model))
            p["normal_mat"].write(np.ascontiguousarray(np.linalg.inv(it.model[:3, :3]), dtype="f4").tobytes())
            p["label"].value = float(it.label)
            p["shininess"].value = it.shininess
            p["specular"].value = it.specular
            s = it.surface
            p["use_tex"].value = s is not None
            if s is not None:
                tex, aspect, mean = self._texture(s.texture)
                tex.use(0)
                p["tex_mean"].value = mean
                p["tint"].value = tuple(s.tint)
                p["contrast"].value = s.contrast
                p["period"].value = s.period
                p["rot"].value = s.rotation
                p["offset"].value = tuple(s.offset)
                p["stretch"].value = s.stretch
                p["tex_aspect"].value = aspect if s.stretch else 1.0
            else:
                p["albedo"].value = tuple(it.albedo)
            self._vao("main", it.mesh).render()
        rgb = np.frombuffer(self.fbo.read(components=3, attachment=0), np.uint8).reshape(h, w, 3)[::-1]
        lab = np.frombuffer(self.fbo.read(components=1, attachment=1, dtype="f4"), np.float32).reshape(h, w)[::-1]
        return np.ascontiguousarray(rgb), np.rint(lab).astype(np.int32)

    def depth(self, near: float = NEAR_M, far: float = FAR_M) -> np.ndarray:
        """Metric depth of the last `render` (the depth buffer, linearised): float32 [H, W], the z distance in
        metres along the camera's optical axis (REP 118), NaN where nothing was drawn. `near`/`far` must be the
        projection's planes (Camera.projection_matrix defaults)."""
        w, h = self.size
        d = np.frombuffer(self.fbo.read(components=1, attachment=-1, dtype="f4"), np.float32).reshape(h, w)[::-1].astype(np.float64)
        z_ndc = 2.0 * d - 1.0
        z = 2.0 * far * near / ((far + near) - z_ndc * (far - near))
        z[d >= 1.0] = np.nan
        return np.ascontiguousarray(z, dtype=np.float32)

    def release(self) -> None:
        self.ctx.release()


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    f = target - eye
    f = f / np.linalg.norm(f)
    up = np.array([0.0, 1.0, 0.0]) if abs(f[2]) > 0.99 else np.array([0.0, 0.0, 1.0])
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m
