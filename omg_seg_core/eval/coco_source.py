"""COCO-panoptic dataset folder as an evaluation source for `omg-seg-eval` (via omg_seg_core.data.coco_panoptic).

Ground truth: the dataset's categories are mapped to the evaluation class list by name; things get 1-based
instance ids in segment order (crowd segments keep instance 0, i.e. a crowd region, see panoptic_quality.py);
`sequence_id` (video datasets written by the generator) starts a new sequence; stamps are 100 ms apart.
Unreadable samples are counted, never fatal.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from omg_seg_core.eval.runner import GroundTruth, SourceFrame
from omg_seg_core.structures import SEMANTIC_IGNORE


def coco_frames(ann_file: Path, stream_skips: Counter) -> tuple[Any, int, dict]:
    """(source(classmap, start) -> Iterator[SourceFrame], sample count, meta)."""
    from omg_seg_core.data.coco_panoptic import CocoPanopticDataset, DatasetError

    ds = CocoPanopticDataset(ann_file, skip_bad=False)

    def source(classmap: Any, start: int) -> Iterator[SourceFrame]:
        lut = np.full(65536, SEMANTIC_IGNORE, np.uint16)
        for c, name in enumerate(ds.class_names):
            idx = classmap.index(name)
            lut[c] = SEMANTIC_IGNORE if idx is None else idx
        seq_ids: dict[Any, int] = {}
        for i in range(len(ds)):
            im = ds.records[i][0]
            seq = seq_ids.setdefault(im.get("sequence_id"), len(seq_ids))
            if i < start:
                yield SourceFrame(i, i * 100_000_000, sequence=seq)
                continue
            try:
                s = ds.load(i)
            except (DatasetError, FileNotFoundError, OSError, ValueError) as e:
                yield SourceFrame(i, i * 100_000_000, skips=[("dataset sample not readable (skipped)", str(e))],
                                  sequence=seq)
                continue
            # Persistent track ids (video datasets) when present, so tracking is measurable; else 1-based order.
            tids = s["track_ids"] if (s["track_ids"] > 0).any() else np.arange(1, len(s["masks"]) + 1)
            inst = np.zeros(s["semantic"].shape, np.uint16)
            for m, thing, crowd, t in zip(s["masks"], s["is_thing"], s["iscrowd"], tids):
                if thing and not crowd:
                    inst[m] = t
            yield SourceFrame(i, i * 100_000_000, s["image"], GroundTruth(lut[s["semantic"]], inst), sequence=seq)

    meta = {"dataset": str(ann_file), "samples": len(ds), "dataset_classes": len(ds.class_names)}
    return source, len(ds), meta


__all__ = ["coco_frames"]
