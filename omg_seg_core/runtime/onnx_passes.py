"""Exact ONNX graph rewrites applied after tracing (see docs/runtimes.md):

- `rewrite_for_runtimes`: bool Where -> And/Or/Not, static EyeLike -> Constant (kernels missing in onnxruntime's
  CPU provider), full-size uniform constants -> broadcast scalars (folded `full_like` attention masks);
- `to_fp16_graph`: the fp16 variant for TensorRT 11 strongly typed networks (heavy ops fp16, the rest fp32).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Optional, Sequence


def attr(node: Any, name: str, default: Any) -> Any:
    """Value of attribute `name` of an ONNX node (bytes decoded), or `default`."""
    import onnx  # noqa: PLC0415

    for a in node.attribute:
        if a.name == name:
            v = onnx.helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


# ---- fp16 graph (TensorRT 11: strongly typed) ------------------------------------------------------------------
#: Ops that carry the FLOPs: run in fp16. Everything else (LayerNorm, Softmax, GridSample sampling positions,
#: reductions, position encodings) stays fp32, which is what autocast does and what TensorRT's fp16 guidance asks.
FP16_OPS = ("Conv", "MatMul", "Gemm", "ConvTranspose")


def to_fp16_graph(model: Any, ops: Sequence[str] = FP16_OPS) -> Any:
    """Copy of `model` where `ops` compute in fp16: fp32 weight initializers used only by them become fp16,
    other inputs get Cast(fp16), outputs Cast back to fp32. Graph inputs/outputs stay fp32."""
    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    users: Counter = Counter(name for n in g.node for name in n.input)
    converted: dict[str, str] = {}
    new_nodes = []
    for idx, node in enumerate(g.node):
        if node.op_type not in ops:
            new_nodes.append(node)
            continue
        for k, name in enumerate(node.input):
            if not name:
                continue
            init = inits.get(name)
            if init is not None and init.data_type == TensorProto.FLOAT:
                if name not in converted:
                    arr = np.clip(numpy_helper.to_array(init), -65504, 65504).astype(np.float16)
                    new_name = name if users[name] == 1 else f"{name}__fp16"
                    t = numpy_helper.from_array(arr, new_name)
                    if new_name == name:
                        init.CopyFrom(t)
                    else:
                        g.initializer.append(t)
                    converted[name] = new_name
                node.input[k] = converted[name]
            else:
                cast_out = f"{name}__to_fp16_{idx}_{k}"
                new_nodes.append(helper.make_node("Cast", [name], [cast_out], to=TensorProto.FLOAT16,
                                                  name=f"cast16_{idx}_{k}"))
                node.input[k] = cast_out
        new_nodes.append(node)
        for k, name in enumerate(node.output):
            half = f"{name}__fp16"
            node.output[k] = half
            new_nodes.append(helper.make_node("Cast", [half], [name], to=TensorProto.FLOAT, name=f"cast32_{idx}_{k}"))
    del g.node[:]
    g.node.extend(new_nodes)
    used = {name for n in g.node for name in n.input}
    keep = [i for i in g.initializer if i.name in used]  # fp32 originals whose users all got fp16 copies
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.value_info[:]  # stale fp32 annotations of the renamed tensors; shape inference re-derives them
    return model


def rewrite_for_runtimes(model: Any) -> dict[str, int]:
    """Rewrite the few traced patterns onnxruntime's CPU provider has no kernel for, in place; returns counts.

    - Where on bool tensors -> Or(And(c, x), And(Not(c), y)) (the decoder's "unblock fully masked rows");
    - EyeLike with a static shape -> a Constant (the prompt self-attention mask, [N, N] with N fixed per export).
    Both rewrites are exact, and TensorRT parses the results as well as the originals."""
    import numpy as np  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    inferred = onnx.shape_inference.infer_shapes(model)
    info = {v.name: v.type.tensor_type
            for v in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    nodes, counts = [], {"bool_where": 0, "eyelike": 0}
    for i, node in enumerate(model.graph.node):
        out = node.output[0] if node.output else ""
        tt = info.get(out)
        if node.op_type == "Where" and tt is not None and tt.elem_type == TensorProto.BOOL:
            c, x, y = node.input
            p = f"bool_where_{i}"
            nodes += [helper.make_node("And", [c, x], [f"{p}_a"], name=f"{p}_and1"),
                      helper.make_node("Not", [c], [f"{p}_nc"], name=f"{p}_not"),
                      helper.make_node("And", [f"{p}_nc", y], [f"{p}_b"], name=f"{p}_and2"),
                      helper.make_node("Or", [f"{p}_a", f"{p}_b"], [out], name=f"{p}_or")]
            counts["bool_where"] += 1
        elif (node.op_type == "EyeLike" and tt is not None and len(tt.shape.dim) == 2
              and all(d.HasField("dim_value") for d in tt.shape.dim)):
            rows, cols = (d.dim_value for d in tt.shape.dim)
            k = attr(node, "k", 0)
            dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
            value = numpy_helper.from_array(np.eye(rows, cols, k=k).astype(dtype), f"eyelike_{i}")
            nodes.append(helper.make_node("Constant", [], [out], name=f"eyelike_const_{i}", value=value))
            counts["eyelike"] += 1
        else:
            nodes.append(node)
    if any(counts.values()):
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    counts["uniform_constants"] = _scalarise_uniform_constants(model, info)
    return counts


_BROADCAST_OPS = ("Where", "And", "Or", "Add", "Sub", "Mul", "Div")


def _scalarise_uniform_constants(model: Any, info: dict[str, Any]) -> int:
    """Constant folding turns `torch.full_like(logits, -1e9)` (attention masking) into full-size constants —
    tens of MB per decoder layer for ConvNeXt-L. Where such a constant feeds an elementwise op whose output has
    the shape of another input, a 0-d scalar broadcasts to the same result: swap it in, drop the big tensor."""
    import numpy as np  # noqa: PLC0415
    from onnx import numpy_helper  # noqa: PLC0415

    def dims(name: str) -> Optional[list[int]]:
        tt = info.get(name)
        if tt is None or not tt.HasField("shape"):
            return None
        d = [x.dim_value if x.HasField("dim_value") else -1 for x in tt.shape.dim]
        return None if -1 in d else d

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    scalars: dict[str, str] = {}
    count = 0
    for node in g.node:
        if node.op_type not in _BROADCAST_OPS:
            continue
        out_dims = dims(node.output[0])
        for k, name in enumerate(node.input):
            init = inits.get(name)
            if init is None or out_dims is None or int(np.prod(init.dims)) <= 1:
                continue
            others = [dims(n) if n not in inits else list(inits[n].dims) for j, n in enumerate(node.input) if j != k]
            if not any(o == out_dims for o in others):
                continue
            arr = numpy_helper.to_array(init)
            if not (arr.flat[0] == arr).all():
                continue
            if name not in scalars:
                scalars[name] = f"{name}__scalar"
                g.initializer.append(numpy_helper.from_array(np.array(arr.flat[0], dtype=arr.dtype), scalars[name]))
            node.input[k] = scalars[name]
            count += 1
    used = {n for node in g.node for n in node.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return count


__all__ = ["rewrite_for_runtimes", "to_fp16_graph", "attr", "FP16_OPS"]
