"""The house rules, checked on the code's own imports (every import, also those inside functions): core never
imports ROS, inference never imports evaluation, tracking never imports the predictor, the model imports no task
code, and no module imports another that imports it back (no cycles)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("omg_seg_core", "omg_seg_ros")
ROS_MODULES = ("rclpy", "omg_seg_ros", "sensor_msgs", "std_msgs", "vision_msgs", "omg_seg_msgs", "geometry_msgs",
               "visualization_msgs", "diagnostic_msgs", "rcl_interfaces", "lifecycle_msgs", "builtin_interfaces")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """module -> modules it imports (absolute names; relative imports resolved)."""
    graph: dict[str, set[str]] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mod = _module_name(path)
            is_pkg = path.name == "__init__.py"
            out: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    out.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                        base = base[: len(base) - (node.level - 1)]
                        name = ".".join(base + ([node.module] if node.module else []))
                    else:
                        name = node.module or ""
                    out.add(name)
                    out.update(f"{name}.{a.name}" for a in node.names)  # `from pkg import module`
            graph[mod] = out
    return graph


def _resolve(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Imports narrowed to the project's own modules (names that are modules of ours)."""
    ours = set(graph)
    return {m: {i for i in imps if i in ours and i != m} for m, imps in graph.items()}


def _imports_of(graph: dict[str, set[str]], prefix: str) -> dict[str, set[str]]:
    return {m: imps for m, imps in graph.items() if m == prefix or m.startswith(prefix + ".")}


def _violations(graph, src: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{m} imports {i}" for m, imps in _imports_of(graph, src).items() for i in imps
                  if any(i == f or i.startswith(f + ".") for f in forbidden))


def test_core_never_imports_ros():
    assert _violations(_imports(), "omg_seg_core", ROS_MODULES) == []


def test_no_module_imports_upward():
    g = _imports()
    core = "omg_seg_core."
    rules = {
        "omg_seg_core.predict": ("eval", "tracking", "train", "cli", "video", "data"),
        "omg_seg_core.tracking": ("predict", "eval", "train", "cli", "video"),
        # the model returns runtime/backend.py's ImageFeatures / PromptOutputs (the graphs' contract), nothing else
        "omg_seg_core.model": ("predict", "tracking", "eval", "train", "cli", "video", "runtime.select",
                               "runtime.ort_backend", "runtime.trt_backend", "runtime.torch_backend"),
        "omg_seg_core.text": ("predict", "tracking", "eval", "train", "cli", "video"),
        "omg_seg_core.structures": ("predict", "tracking", "eval", "model", "runtime", "text", "video"),
        "omg_seg_core.eval": ("predict", "train", "cli", "video"),
        "omg_seg_core.runtime": ("predict", "tracking", "eval", "train", "cli", "video"),
        # depth geometry is a leaf: result types in, 3D answers out
        "omg_seg_core.spatial": ("predict", "tracking", "eval", "model", "runtime", "text", "train", "cli", "video",
                                 "data"),
    }
    bad = [v for src, names in rules.items() for v in _violations(g, src, tuple(core + n for n in names))]
    assert bad == []


def test_no_import_cycles():
    g = _resolve(_imports())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    # a package's __init__ importing its own submodules (and them importing names from the package) is the
    # usual re-export, not a cycle between designs
    cycles = [c for c in cycles if not all(m.startswith(min(c, key=len) + ".") or m == min(c, key=len) for m in c)]
    assert cycles == []
