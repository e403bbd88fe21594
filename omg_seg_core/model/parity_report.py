"""Print how closely our model reproduces the official OMG-Seg golden fixture (max abs differences).

    scripts/with_env.sh .venv/bin/python -m omg_seg_core.model.parity_report [--reference DIR] [--threads N]

Columns mirror the fixture README's section 7 so the numbers can be put side by side with the official
re-run differences. Case 1 is reported free-running and with the stored attention masks teacher-forced.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import CONVL, PACKAGE_ROOT
from .checkpoint import official_to_ours
from .decoder_head import OMGSegHead
from .classifier import text_embed_from_official_buffer
from .omg_seg import build_pixel_decoder


def _unpack(bits: torch.Tensor, shape) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(bits.numpy())[: int(np.prod(shape))].reshape(shape).astype(bool))


def _d(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def report(reference: Path) -> dict[str, float]:
    g = torch.load(reference / "omg_seg_golden_head.pt", map_location="cpu", weights_only=True)
    pd, head = build_pixel_decoder(CONVL).eval(), OMGSegHead(CONVL).eval()
    sd = {official_to_ours(k): v for k, v in g["head_state_dict"].items()}
    pd.load_state_dict({k[14:]: v for k, v in sd.items() if k.startswith("pixel_decoder.")})
    head.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("head.")})
    head.set_text_embed(text_embed_from_official_buffer(g["inputs"]["cls_embed_buffer"]))
    o1, o2, pr = g["outputs"]["case1"], g["outputs"]["case2_prompts"], g["inputs"]["prompts"]
    bits = o1["attn_masks_packbits"]
    stored = [_unpack(b, s) for b, s in zip(bits["bits"], bits["shapes"])]
    r: dict[str, float] = {}
    with torch.no_grad():
        mf, mem = pd([f.float() / 16 for f in g["inputs"]["feats_int8"]])
        gp = o1["pixel_decoder"]
        r["pixel decoder mask_features vs fp16 store"] = _d(mf, gp["mask_features_fp16"])
        r["pixel decoder memory vs fp16 store"] = max(_d(m, s) for m, s in zip(mem, gp["multi_scale_memorys_fp16"]))
        r["pixel decoder mask_features sum rel. err"] = abs(mf.double().sum().item() / gp["mask_features_stats_fp64"][0].item() - 1)
        win = o1["mask_logits_final_window_fp32"]
        (r0, r1), (c0, c1) = win["rows"], win["cols"]
        for name, forced in (("c1 free", None), ("c1 forced", [m[None] for m in stored[:9]])):
            out = head(mf, mem, forced_attn_masks=forced, return_attn_masks=True)
            r[f"{name} cls logits (all 10)"] = max(_d(a, b) for a, b in zip(out.cls_logits, o1["cls_logits_per_layer"]))
            r[f"{name} iou logits (all 10)"] = max(_d(a, b) for a, b in zip(out.iou_logits, o1["iou_logits_per_layer"]))
            r[f"{name} final mask fp32 window"] = _d(out.mask_logits[-1][0, :, r0:r1, c0:c1], win["values"])
            r[f"{name} query_feat_final"] = _d(out.query_feat, o1["query_feat_final"])
            own = [head.attn_blocked(m, (int(s[1] ** 0.5),) * 2)[0] for m, s in zip(out.mask_logits[:9], bits["shapes"])]
            r[f"{name} attn-mask bit flips (9 used)"] = float(sum(int((a != b).sum()) for a, b in zip(own, stored)))
        r["c1 free cls logits, predictions 0-4"] = max(
            _d(a, b) for a, b in zip(head(mf, mem).cls_logits[:5], o1["cls_logits_per_layer"][:5]))
        out = head.forward_prompts(mf, mem, pr["point_coords"][None], tuple(g["inputs"]["img_meta"]["img_shape"]))
        r["c2 cls logits (all 10)"] = max(_d(a, b) for a, b in zip(out.cls_logits, o2["cls_logits_per_layer"]))
        r["c2 final mask"] = _d(out.mask_logits[-1], o2["mask_logits_final"])
        r["c2 query_feat_final"] = _d(out.query_feat, o2["query_feat_final"])
        m = g["inputs"]["img_meta"]
        up = F.interpolate(out.mask_logits[-1], size=tuple(m["batch_input_shape"]), mode="bilinear",
                           align_corners=False)[:, :, : m["img_shape"][0], : m["img_shape"][1]]
        up = F.interpolate(up, size=tuple(m["ori_shape"]), mode="bilinear", align_corners=False)[0]
        r["c2 prompt mask px differing"] = float(((up.sigmoid() > 0.5) != _unpack(o2["pred_masks_packbits"],
                                                                              o2["pred_masks_shape"])).sum())
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(os.environ.get("OMG_SEG_REFERENCE", PACKAGE_ROOT.parent / "shared" / "reference" / "omg_seg_convl"))
    ap.add_argument("--reference", type=Path, default=default)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (the fixture was made with 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for k, v in report(args.reference).items():
        print(f"{k:48s} {v:.3g}")


if __name__ == "__main__":
    main()
