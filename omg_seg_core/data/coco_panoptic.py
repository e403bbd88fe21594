"""COCO-panoptic datasets: id-map encoding, a writer for generated frames, and a reader / torch Dataset.

Format (https://cocodataset.org/#format-data, "panoptic segmentation"): an annotations JSON with ``images``,
``annotations`` (one per image: ``file_name`` of its PNG and ``segments_info``) and ``categories`` ({id, name,
isthing}); PNGs store segment ids as RGB with id = R + 256 G + 256^2 B (0 = void). The reader works with any
such dataset (COCO itself or the user's); our generator adds optional fields it also reads:
``segments_info[*].track_id``, ``.phrase``, ``.attributes`` {colour, size, shape} and ``images[*].sequence_id`` /
``.frame_index``. Videos are described in a separate JSON (`write_video_json`).

Class ids: the reader maps category ids to contiguous class ids, things first then stuff, each group in the
order of ``categories`` (the project contract, docs/CONTRACTS.md); `CocoPanopticDataset.class_names` lists them.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
from torch.utils.data import Dataset

log = logging.getLogger(__name__)
PathLike = Union[str, Path]


class DatasetError(ValueError):
    """A malformed dataset file; the message names the file and the field."""


def rgb_to_id(png: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] panoptic PNG -> int32 [H, W] segment ids (id = R + 256 G + 256^2 B)."""
    png = png.astype(np.int32)
    return png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """int [H, W] segment ids (0 .. 2^24-1) -> uint8 [H, W, 3]."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= 1 << 24):
        raise ValueError(f"segment ids must be in [0, 2^24), got range [{ids.min()}, {ids.max()}]")
    ids = ids.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], -1).astype(np.uint8)


def read_image(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB; FileNotFoundError / DatasetError naming the file."""
    import cv2

    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot decode image file {path} (corrupt or not an image)")
    return np.ascontiguousarray(img[:, :, ::-1])


def write_image(path: Path, rgb: np.ndarray, jpeg_quality: int = 92) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)  # never leave a half-written file under the real name
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[:, :, ::-1]), params):
        raise OSError(f"cannot write image {path}")
    tmp.replace(path)


def load_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from e


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _require(obj: Any, key: str, where: str, types: tuple = (object,)) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DatasetError(f"{where}: missing field '{key}'")
    if not isinstance(obj[key], types):
        raise DatasetError(f"{where}: field '{key}' has type {type(obj[key]).__name__}")
    return obj[key]


class CocoPanopticDataset(Dataset):
    """Reader of a COCO-panoptic dataset; also a `torch.utils.data.Dataset` (map-style, numpy samples).

    Args:
        ann_file: the panoptic annotations JSON.
        image_dir: folder of the images (default: ``<ann_file dir>/images``).
        panoptic_dir: folder of the PNGs (default: ``<ann_file dir>/panoptic``, else the COCO layout
            ``<ann_file without .json>/``).
        skip_bad: False (default) raises on the first bad sample. True skips bad samples and COUNTS them: each skip
            is logged as a warning and recorded in ``self.skipped`` [(file, reason)]; ``__getitem__`` then returns the
            next good sample. Samples whose files are missing are removed at construction (also recorded).
        allow_empty: accept images with no segments (else DatasetError names the image).

    A sample (dict): ``image`` uint8 [H, W, 3] RGB; ``masks`` bool [N, H, W]; ``class_ids`` int64 [N];
    ``is_thing`` bool [N]; ``segment_ids`` int64 [N]; ``track_ids`` int64 [N] (0 if absent); ``boxes`` float32
    [N, 4] xyxy (x2/y2 exclusive, from masks); ``semantic`` uint16 [H, W] (65535 = void); ``phrases`` list[str]
    ('' if absent); ``attributes`` list[dict]; ``image_id``; ``file_name``; ``sequence_id`` / ``frame_index``
    (None if absent).
    """

    def __init__(self, ann_file: PathLike, image_dir: Optional[PathLike] = None, panoptic_dir: Optional[PathLike] = None,
                 skip_bad: bool = False, allow_empty: bool = True):
        self.ann_file = Path(ann_file)
        data = load_json(self.ann_file)
        root = self.ann_file.parent
        self.image_dir = Path(image_dir) if image_dir else root / "images"
        if panoptic_dir:
            self.panoptic_dir = Path(panoptic_dir)
        else:
            self.panoptic_dir = root / "panoptic"
            if not self.panoptic_dir.is_dir() and self.ann_file.with_suffix("").is_dir():
                self.panoptic_dir = self.ann_file.with_suffix("")  # COCO: annotations/panoptic_val2017/
        for d, what in ((self.image_dir, "image_dir"), (self.panoptic_dir, "panoptic_dir")):
            if not d.is_dir():
                raise FileNotFoundError(f"{what} not found: {d} (pass {what}= for {self.ann_file})")
        self.skip_bad, self.allow_empty = skip_bad, allow_empty
        self.skipped: list[tuple[str, str]] = []
        self.info = data.get("info", {}) if isinstance(data, dict) else {}
        cats = _require(data, "categories", str(self.ann_file), (list,))
        if not cats:
            raise DatasetError(f"{self.ann_file}: 'categories' is empty")
        for i, c in enumerate(cats):
            for k in ("id", "name", "isthing"):
                _require(c, k, f"{self.ann_file}: categories[{i}]")
        ordered = [c for c in cats if c["isthing"]] + [c for c in cats if not c["isthing"]]
        self.categories = ordered
        self.cat_to_class = {int(c["id"]): i for i, c in enumerate(ordered)}
        if len(self.cat_to_class) != len(cats):
            raise DatasetError(f"{self.ann_file}: duplicate category ids in 'categories'")
        self.class_names = [str(c["name"]) for c in ordered]
        self.num_things = sum(1 for c in ordered if c["isthing"])
        images = {int(_require(im, "id", f"{self.ann_file}: images[{i}]")): im
                  for i, im in enumerate(_require(data, "images", str(self.ann_file), (list,)))}
        self.records: list[tuple[dict, dict]] = []
        for i, ann in enumerate(_require(data, "annotations", str(self.ann_file), (list,))):
            where = f"{self.ann_file}: annotations[{i}]"
            image_id = int(_require(ann, "image_id", where))
            if image_id not in images:
                raise DatasetError(f"{where}: image_id {image_id} not in 'images'")
            _require(ann, "file_name", where, (str,))
            for j, s in enumerate(_require(ann, "segments_info", where, (list,))):
                for k in ("id", "category_id"):
                    _require(s, k, f"{where}.segments_info[{j}]")
                if int(s["category_id"]) not in self.cat_to_class:
                    raise DatasetError(f"{where}.segments_info[{j}]: unknown category_id {s['category_id']} "
                                       f"(not in 'categories')")
            if not ann["segments_info"] and not allow_empty:
                raise DatasetError(f"{where}: empty segments_info for image {images[image_id].get('file_name')}")
            im = images[image_id]
            _require(im, "file_name", f"{self.ann_file}: image id {image_id}", (str,))
            if skip_bad:
                missing = [p for p in (self.image_dir / im["file_name"], self.panoptic_dir / ann["file_name"]) if not p.is_file()]
                if missing:
                    self._skip(str(missing[0]), "file not found")
                    continue
            self.records.append((im, ann))
        if not self.records:
            raise DatasetError(f"{self.ann_file}: no usable annotations (skipped {len(self.skipped)})")

    def _skip(self, file: str, reason: str) -> None:
        self.skipped.append((file, reason))
        log.warning("skipping bad sample %s: %s (%d skipped so far)", file, reason, len(self.skipped))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        if not self.skip_bad:
            return self.load(index)
        for k in range(len(self)):
            i = (index + k) % len(self)
            try:
                return self.load(i)
            except (DatasetError, FileNotFoundError) as e:
                self._skip(self.records[i][0].get("file_name", str(i)), str(e))
        raise DatasetError(f"{self.ann_file}: every sample is bad ({len(self.skipped)} skipped)")

    def load(self, index: int) -> dict:
        """Sample ``index``; raises DatasetError / FileNotFoundError naming the file and field."""
        im, ann = self.records[index]
        img_path, png_path = self.image_dir / im["file_name"], self.panoptic_dir / ann["file_name"]
        image = read_image(img_path)
        png = read_image(png_path)
        if png.shape != image.shape:
            raise DatasetError(f"{png_path}: size {png.shape[1]}x{png.shape[0]} differs from image {img_path} "
                               f"({image.shape[1]}x{image.shape[0]})")
        ids = rgb_to_id(png)
        segs = ann["segments_info"]
        seg_ids = np.array([int(s["id"]) for s in segs], np.int64)
        masks = ids[None] == seg_ids[:, None, None].astype(np.int32)
        present = masks.reshape(len(segs), -1).any(1) if len(segs) else np.zeros(0, bool)
        if len(segs) and not present.all():
            bad = [int(seg_ids[i]) for i in np.flatnonzero(~present)]
            raise DatasetError(f"{png_path}: segments_info ids {bad} have no pixels in the PNG")
        unknown = np.setdiff1d(np.unique(ids), np.append(seg_ids, 0))
        if unknown.size:  # pixels nobody describes: a broken PNG or annotation, never silently void
            raise DatasetError(f"{png_path}: segment ids {unknown[:10].tolist()} in the PNG are missing from "
                               f"segments_info of {self.ann_file.name} (image {im['file_name']})")
        if not segs and not self.allow_empty:
            raise DatasetError(f"{self.ann_file}: empty segments_info for {im['file_name']}")
        class_ids = np.array([self.cat_to_class[int(s["category_id"])] for s in segs], np.int64)
        from ..structures import SEMANTIC_IGNORE, masks_to_boxes

        semantic = np.full(ids.shape, SEMANTIC_IGNORE, np.uint16)
        for m, c in zip(masks, class_ids):
            semantic[m] = c
        crowd = np.array([bool(s.get("iscrowd", 0)) for s in segs], bool)
        return {
            "image": image, "masks": masks, "class_ids": class_ids, "is_thing": class_ids < self.num_things,
            "iscrowd": crowd, "segment_ids": seg_ids,
            "track_ids": np.array([int(s.get("track_id", 0)) for s in segs], np.int64),
            "boxes": masks_to_boxes(masks), "semantic": semantic,
            "phrases": [str(s.get("phrase", "")) for s in segs],
            "attributes": [dict(s.get("attributes", {})) for s in segs],
            "image_id": int(im["id"]), "file_name": im["file_name"],
            "sequence_id": im.get("sequence_id"), "frame_index": im.get("frame_index"),
        }


def segments_info_json(segments: Sequence, category_offset: int = 1) -> list[dict]:
    """COCO ``segments_info`` (+ our extra fields) of `generator.SegmentInfo`s; category id = class id + offset."""
    out = []
    for s in segments:
        d = {"id": int(s.id), "category_id": int(s.class_id) + category_offset, "iscrowd": 0,
             "bbox": [int(v) for v in s.bbox], "area": int(s.area), "phrase": s.phrase}
        if s.is_thing:
            d["track_id"] = int(s.track_id)
            d["attributes"] = {"colour": s.colour, "size": s.size, "shape": s.shape}
            d["phrase_canonical"] = s.phrase_canonical
            d["phrase_unique"] = bool(s.phrase_unique)
        out.append(d)
    return out


def write_video_json(path: PathLike, videos: list[dict]) -> None:
    """Video/track JSON: ``{"videos": [{"id", "name", "length", "frames": [{"image_id", "frame_index",
    "file_name"}], "tracks": [{"track_id", "category_id", "attributes", "frames": [frame_index...]}]}]}``.
    Track ids are unique within a video (scope = video id)."""
    write_json(Path(path), {"videos": videos})
