"""Pre-processing: mmdet keep-ratio rounding, ImageNet normalisation, zero padding, coordinate scaling."""
import numpy as np
import pytest
import torch

from omg_seg_core.config import IMAGENET_MEAN, IMAGENET_STD
from omg_seg_core.predict.preprocess import (ImageMeta, original_to_resized_xy, padded_shape, preprocess, resized_shape,
                                     validate_image)


def test_resized_shape_matches_mmcv_rounding():
    assert resized_shape((480, 640), 512) == (384, 512)      # the golden fixture's meta
    assert resized_shape((480, 640), 1024) == (768, 1024)
    assert resized_shape((240, 320), 320) == (240, 320)
    assert resized_shape((200, 300), 320) == (213, 320)      # int(200 * 320/300 + 0.5)
    assert resized_shape((1000, 10), 100) == (100, 1)
    assert padded_shape((213, 320), 32) == (224, 320)
    with pytest.raises(ValueError, match="-5"):
        resized_shape((10, 10), -5)


def test_preprocess_normalises_and_pads_with_zeros():
    img = np.zeros((200, 300, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 128, 250
    x, meta = preprocess(img, 320, 32)
    assert meta == ImageMeta((200, 300), (213, 320), (224, 320))
    assert x.shape == (1, 3, 224, 320) and x.dtype == torch.float32
    expect = (torch.tensor([10.0, 128.0, 250.0]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[0, :, 100, 100], expect)
    assert torch.all(x[0, :, 213:, :] == 0)  # padding after normalisation is exactly zero
    x16, _ = preprocess(img, 320, 32, dtype=torch.float16)
    assert x16.dtype == torch.float16


def test_preprocess_resizes_content_not_just_shape():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 100:] = 255                       # right half white
    x, meta = preprocess(img, 400, 32)       # upscale x2
    assert meta.img_shape == (200, 400)
    row = x[0, 0, 100]
    assert row[:190].max() < 0 and row[210:400].min() > 0


def test_coordinate_scaling_and_validation():
    meta = ImageMeta((480, 640), (384, 512), (384, 512))
    np.testing.assert_allclose(original_to_resized_xy(np.array([[100.0, 50.0]]), meta), [[80.0, 40.0]])
    np.testing.assert_allclose(original_to_resized_xy(np.array([[0, 0, 640, 480]]), meta), [[0, 0, 512, 384]])
    with pytest.raises(TypeError, match="int64"):
        validate_image(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ValueError, match=r"\(4, 4, 4\)"):
        validate_image(np.zeros((4, 4, 4), np.uint8))
