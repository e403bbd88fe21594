"""Video metrics: IDF1 / HOTA / CLEAR (trackeval on mask IoU), ID switches per 100 frames, VPQ, target hits.

* Tracking metrics use trackeval's own metric classes (`HOTA`, `Identity`, `CLEAR`) on data dicts built here
  (no files): similarity = exact mask IoU of every (ground-truth, predicted) pair of thing segments in a frame.
  Class-agnostic (a correct mask with a wrong class still counts for tracking; PQ/VPQ judge classes).
  Predicted thing segments with track id 0 (tentative / untracked) are not tracker outputs and are left out.
* VPQ (Kim et al., "Video Panoptic Segmentation", CVPR 2020): for a window size k, every run of k consecutive
  frames is treated as one image made of the k frames side by side; segments are tubes identified by
  (class, track id) — stuff by class only — so an id switch inside a window splits a tube and costs a match.
  Within each window, PQ matching follows panopticapi (same class, IoU > 0.5, union minus the prediction's
  part on void; unmatched predictions mostly on void are not false positives). TP / FP / FN / IoU sums are
  accumulated per class over all windows of all sequences; VPQ^k = mean over classes seen;
  VPQ = mean over the window sizes. Tube intersections are sums of per-frame intersections, so each frame's
  pixels are counted once (np.bincount) and windows are cheap sums of small tables.
* Target hit rate: fraction of frames in which the ground-truth target is visible and the predicted target
  mask has IoU >= 0.5 with it (frames where the target is invisible are not counted).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..structures import Segments, mask_iou_matrix


@dataclass
class VideoFrame:
    """One frame's labelling (ground truth or prediction). Stuff ids are ignored (stuff is keyed by class).

    masks bool [N, H, W]; ids int [N] (track ids, 0 = untracked); class_ids int [N] (>= 0); is_thing bool [N].
    """

    masks: np.ndarray
    ids: np.ndarray
    class_ids: np.ndarray
    is_thing: np.ndarray

    def __post_init__(self) -> None:
        self.masks = np.asarray(self.masks, bool)
        if self.masks.ndim != 3:
            raise ValueError(f"VideoFrame.masks must be [N, H, W], got {self.masks.shape}")
        n = self.masks.shape[0]
        self.ids = np.asarray(self.ids, np.int64).reshape(n)
        self.class_ids = np.asarray(self.class_ids, np.int64).reshape(n)
        self.is_thing = np.asarray(self.is_thing, bool).reshape(n)

    @classmethod
    def from_segments(cls, seg: Segments) -> "VideoFrame":
        return cls(seg.masks, seg.track_ids, seg.class_ids, seg.is_thing)


class _Sequence:
    """Per-sequence accumulators: trackeval inputs and per-frame panoptic intersection tables."""

    def __init__(self) -> None:
        self.gt_ids: list[np.ndarray] = []
        self.tr_ids: list[np.ndarray] = []
        self.sims: list[np.ndarray] = []
        # Per frame for VPQ: {gt_key: area}, {pred_key: area}, {(gt_key, pred_key): inter}, {pred_key: on void}
        self.tables: list[tuple[dict, dict, dict, dict]] = []
        self.target_hits = 0
        self.target_visible = 0
        self.untracked_serial = 0


class VideoEvaluator:
    """Streaming video evaluation. Usage: `start_sequence()`, then `process(gt, pred)` per frame (and
    `process_target(gt_mask, pred_mask)` for persistent targets), repeat per sequence, then `evaluate()`."""

    def __init__(self, class_names: Sequence[str], is_thing: Sequence[bool],
                 windows: Sequence[int] = (1, 5, 10, 15), iou_threshold: float = 0.5) -> None:
        if len(class_names) != len(is_thing):
            raise ValueError(f"{len(class_names)} class names but {len(is_thing)} thing flags")
        if not windows or any(int(k) < 1 for k in windows):
            raise ValueError(f"VPQ window sizes must be >= 1, got {windows}")
        self.class_names = list(class_names)
        self.is_thing = np.asarray(is_thing, bool)
        self.windows = tuple(int(k) for k in windows)
        self.iou_threshold = float(iou_threshold)
        self.sequences: list[_Sequence] = []

    def reset(self) -> None:
        """Forget every sequence."""
        self.sequences = []

    def start_sequence(self) -> None:
        self.sequences.append(_Sequence())

    def merge(self, other: "VideoEvaluator") -> None:
        """Append another evaluator's sequences after ours (same classes and settings). Every metric is computed
        from the per-sequence data in `evaluate()`, so the result equals one evaluator fed both in that order.
        Sequences are whole: split a video only at sequence boundaries (tracks must not be cut)."""
        if (other.class_names, other.windows, other.iou_threshold) != (self.class_names, self.windows,
                                                                        self.iou_threshold):
            raise ValueError("VideoEvaluator.merge: class lists or settings differ")
        self.sequences += other.sequences

    def _current(self) -> _Sequence:
        if not self.sequences:
            raise RuntimeError("VideoEvaluator: call start_sequence() before adding frames")
        return self.sequences[-1]

    def process(self, gt: VideoFrame | Segments, pred: VideoFrame | Segments) -> None:
        """Add one frame: ground truth (ids = GT track ids) and prediction (ids = tracker ids)."""
        gt = gt if isinstance(gt, VideoFrame) else VideoFrame.from_segments(gt)
        pred = pred if isinstance(pred, VideoFrame) else VideoFrame.from_segments(pred)
        if gt.masks.shape[1:] != pred.masks.shape[1:]:
            raise ValueError(f"ground truth {gt.masks.shape[1:]} and prediction {pred.masks.shape[1:]} differ")
        for what, f in (("ground truth", gt), ("prediction", pred)):
            bad = f.class_ids[(f.class_ids < 0) | (f.class_ids >= len(self.class_names))]
            if bad.size:
                raise ValueError(f"{what}: class id(s) {sorted(set(bad.tolist()))} outside the class list")
        seq = self._current()
        g_th = np.flatnonzero(gt.is_thing & gt.masks.any(axis=(1, 2)))
        p_th = np.flatnonzero(pred.is_thing & (pred.ids > 0))
        if (gt.ids[g_th] <= 0).any():
            raise ValueError("ground-truth thing segments need track ids >= 1")
        seq.gt_ids.append(gt.ids[g_th].copy())
        seq.tr_ids.append(pred.ids[p_th].copy())
        seq.sims.append(mask_iou_matrix(gt.masks[g_th], pred.masks[p_th]))
        seq.tables.append(self._frame_table(gt, pred, seq))

    def process_target(self, gt_mask: Optional[np.ndarray], pred_mask: Optional[np.ndarray]) -> Optional[float]:
        """One frame of one persistent target; returns the IoU (None when the target is not visible)."""
        seq = self._current()
        if gt_mask is None or not np.asarray(gt_mask).any():
            return None
        seq.target_visible += 1
        if pred_mask is None or not np.asarray(pred_mask).any():
            return 0.0
        iou = float(mask_iou_matrix(np.asarray(gt_mask, bool)[None], np.asarray(pred_mask, bool)[None])[0, 0])
        seq.target_hits += iou >= 0.5
        return iou

    # --------------------------------------------------------------------------------------------- VPQ
    def _frame_table(self, gt: VideoFrame, pred: VideoFrame, seq: _Sequence) -> tuple[dict, dict, dict, dict]:
        h, w = gt.masks.shape[1:]
        g_keys = [(int(c), int(i) if t else 0) for c, i, t in zip(gt.class_ids, gt.ids, gt.is_thing)]
        p_keys = []
        for c, i, t in zip(pred.class_ids, pred.ids, pred.is_thing):
            if t and i <= 0:
                # An untracked thing cannot be linked over time: a fresh negative id per frame and segment.
                seq.untracked_serial += 1
                i = -seq.untracked_serial
            p_keys.append((int(c), int(i) if t else 0))
        g_lab = _label_map(gt.masks, h, w)   # 0 = void, k = segment k-1 (later masks win, as semantic_map)
        p_lab = _label_map(pred.masks, h, w)
        ng, npd = len(g_keys) + 1, len(p_keys) + 1
        inter = np.bincount(g_lab.ravel() * npd + p_lab.ravel(), minlength=ng * npd).reshape(ng, npd)
        g_area: dict = defaultdict(int)
        p_area: dict = defaultdict(int)
        pairs: dict = defaultdict(int)
        on_void: dict = defaultdict(int)
        # Several segments may share a key (e.g. two masks of one stuff class): their pixels add up.
        for gi, gk in enumerate(g_keys):
            g_area[gk] += int(inter[gi + 1].sum())
        for pi, pk in enumerate(p_keys):
            p_area[pk] += int(inter[:, pi + 1].sum())
            on_void[pk] += int(inter[0, pi + 1])
        for gi, pi in zip(*np.nonzero(inter[1:, 1:])):
            pairs[(g_keys[gi], p_keys[pi])] += int(inter[gi + 1, pi + 1])
        return dict(g_area), dict(p_area), dict(pairs), dict(on_void)

    def _vpq_counts(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        c = len(self.class_names)
        iou_sum, tp, fp, fn = np.zeros(c), np.zeros(c, np.int64), np.zeros(c, np.int64), np.zeros(c, np.int64)
        for seq in self.sequences:
            for start in range(0, len(seq.tables) - k + 1):
                g_area: dict = defaultdict(int)
                p_area: dict = defaultdict(int)
                pairs: dict = defaultdict(int)
                on_void: dict = defaultdict(int)
                for ga, pa, pr, ov in seq.tables[start:start + k]:
                    for d, src in ((g_area, ga), (p_area, pa), (pairs, pr), (on_void, ov)):
                        for key, v in src.items():
                            d[key] += v
                g_hit, p_hit = set(), set()
                for (gk, pk), n in pairs.items():
                    if gk[0] != pk[0]:
                        continue
                    iou = n / (g_area[gk] + p_area[pk] - n - on_void[pk])
                    if iou > 0.5:  # unique: tubes of one window do not overlap
                        tp[gk[0]] += 1
                        iou_sum[gk[0]] += iou
                        g_hit.add(gk)
                        p_hit.add(pk)
                for gk, area in g_area.items():
                    if gk not in g_hit and area > 0:
                        fn[gk[0]] += 1
                for pk, area in p_area.items():
                    if pk not in p_hit and area > 0 and on_void[pk] / area <= 0.5:
                        fp[pk[0]] += 1
        return iou_sum, tp, fp, fn

    def vpq(self) -> dict:
        """{"vpq", "vpq_things", "vpq_stuff", "per_window": {k: {"vpq", "things", "stuff"}}} (nan if empty)."""
        per = {}
        for k in self.windows:
            iou_sum, tp, fp, fn = self._vpq_counts(k)
            denom = tp + 0.5 * fp + 0.5 * fn
            seen = denom > 0
            pq = np.where(seen, iou_sum / np.where(seen, denom, 1), 0.0)
            per[k] = {name: float(pq[seen & sel].mean()) if (seen & sel).any() else float("nan")
                      for name, sel in (("vpq", np.ones_like(seen)), ("things", self.is_thing),
                                        ("stuff", ~self.is_thing))}
        mean = {name: float(np.nanmean([per[k][name] for k in self.windows]))
                if any(not np.isnan(per[k][name]) for k in self.windows) else float("nan")
                for name in ("vpq", "things", "stuff")}
        return {"vpq": mean["vpq"], "vpq_things": mean["things"], "vpq_stuff": mean["stuff"], "per_window": per}

    # ---------------------------------------------------------------------------------- trackeval metrics
    def _trackeval_data(self, seq: _Sequence) -> dict:
        gt_all = np.unique(np.concatenate(seq.gt_ids)) if seq.gt_ids else np.zeros(0, np.int64)
        tr_all = np.unique(np.concatenate(seq.tr_ids)) if seq.tr_ids else np.zeros(0, np.int64)
        return {
            "num_timesteps": len(seq.gt_ids),
            "num_gt_ids": len(gt_all), "num_tracker_ids": len(tr_all),
            "num_gt_dets": int(sum(len(g) for g in seq.gt_ids)),
            "num_tracker_dets": int(sum(len(t) for t in seq.tr_ids)),
            # trackeval indexes count matrices with the ids: map them to 0..n-1
            "gt_ids": [np.searchsorted(gt_all, g) for g in seq.gt_ids],
            "tracker_ids": [np.searchsorted(tr_all, t) for t in seq.tr_ids],
            "similarity_scores": seq.sims,
        }

    def tracking(self) -> dict:
        """IDF1, IDP, IDR, HOTA, DetA, AssA, MOTA, MOTP, IDSW, frames, IDSW per 100 frames (trackeval)."""
        from trackeval.metrics import CLEAR, HOTA, Identity

        cfg = {"THRESHOLD": self.iou_threshold, "PRINT_CONFIG": False}
        metrics = {"hota": HOTA(), "identity": Identity(cfg), "clear": CLEAR(cfg)}
        data = {f"seq{i}": self._trackeval_data(s) for i, s in enumerate(self.sequences) if s.gt_ids}
        if not data:
            raise RuntimeError("VideoEvaluator: no frames added")
        res = {}
        for name, m in metrics.items():
            res[name] = m.combine_sequences({sid: m.eval_sequence(d) for sid, d in data.items()})
        frames = int(res["clear"]["CLR_Frames"])
        return {
            "IDF1": float(res["identity"]["IDF1"]), "IDP": float(res["identity"]["IDP"]),
            "IDR": float(res["identity"]["IDR"]),
            "HOTA": float(np.mean(res["hota"]["HOTA"])), "DetA": float(np.mean(res["hota"]["DetA"])),
            "AssA": float(np.mean(res["hota"]["AssA"])),
            "MOTA": float(res["clear"]["MOTA"]), "MOTP": float(res["clear"]["MOTP"]),
            "IDSW": int(res["clear"]["IDSW"]), "frames": frames,
            "IDSW_per_100_frames": 100.0 * float(res["clear"]["IDSW"]) / max(frames, 1),
            "gt_tracks": int(sum(d["num_gt_ids"] for d in data.values())),
            "pred_tracks": int(sum(d["num_tracker_ids"] for d in data.values())),
        }

    def targets(self) -> dict:
        visible = sum(s.target_visible for s in self.sequences)
        hits = sum(s.target_hits for s in self.sequences)
        return {"target_visible_frames": int(visible),
                "target_iou50_fraction": float(hits / visible) if visible else float("nan")}

    def evaluate(self) -> dict:
        """All metrics: tracking (trackeval), VPQ, targets."""
        return {**self.tracking(), **self.vpq(), **self.targets()}


def _label_map(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    """bool [N, H, W] -> int64 [H, W]: 0 = no mask, i + 1 = mask i (later masks overwrite earlier ones)."""
    lab = np.zeros((h, w), np.int64)
    for i, m in enumerate(masks):
        lab[m] = i + 1
    return lab


__all__ = ["VideoFrame", "VideoEvaluator"]
