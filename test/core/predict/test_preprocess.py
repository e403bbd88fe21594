"""Pre-processing: mmdet keep-ratio rounding, ImageNet normalisation, zero padding, coordinate scaling."""
import numpy as np
import pytest
import torch

from omg_seg_core.config import IMAGENET_MEAN, IMAGENET_STD
from omg_seg_core.predict.preprocess import (ImageMeta, original_to_resized_xy, padded_shape, preprocess, resized_shape,
                                     validate_image, validate_prompts)


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


def test_preprocess_is_the_official_normalisation_of_any_image_layout():
    """(x - mean) / std in float32 on every pixel, exactly: both are single IEEE float32 subtractions and divisions
    (the same on any CPU), here against torch's ops on the whole image, also for a non-contiguous view (BGR->RGB
    flip, as cv_bridge users write) and an image needing no padding."""
    rng = np.random.default_rng(5)
    for img in (rng.integers(0, 256, (240, 320, 3), np.uint8),
                rng.integers(0, 256, (256, 320, 3), np.uint8)[..., ::-1]):
        x, meta = preprocess(img, 320, 32)
        h, w = meta.img_shape
        ref = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
        ref = (ref - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        torch.testing.assert_close(x[0, :, :h, :w], ref, rtol=0, atol=0)
        assert torch.all(x[0, :, h:] == 0) and torch.all(x[0, :, :, w:] == 0)


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


# ---- validate_prompts: THE check of every prompt (predictor and ROS requests) ----------------------------------
@pytest.mark.parametrize("points,labels,boxes,match", [
    ([], [], [], "no prompt"),
    ([float("nan"), 3.0], [], [], "NaN"),
    ([5.0, 3.0], [], [float("inf"), 0, 4, 4], "NaN or infinite"),
    ([320.0, 10.0], [], [], "outside"),
    ([-1.0, 10.0], [], [], "outside"),
    ([1.0, 2.0, 3.0], [], [], "multiple of 2"),
    ([1.0, 2.0], [1, 0], [], "2 values for 1 points"),
    ([1.0, 2.0], [2], [], "1 \\(foreground\\) or 0"),
    ([], [1], [0, 0, 5, 5], "no points"),
    ([], [], [1, 2, 3], "multiple of 4"),
    ([], [], [10, 10, 5, 20], "empty or inverted"),
    ([], [], [400, 10, 500, 20], "outside"),
])
def test_bad_prompts_are_rejected_with_a_reason(points, labels, boxes, match):
    with pytest.raises(ValueError, match=match):
        validate_prompts(points, labels, boxes, (240, 320))


def test_valid_prompts_are_shaped_and_clipped():
    pts, lab, box = validate_prompts([10, 20, 30, 40], [1, 0], [-5, -5, 400, 100], (240, 320))
    assert pts.shape == (2, 2) and lab.tolist() == [1, 0]
    assert box.tolist() == [[0, 0, 320, 100]]
    pts, lab, box = validate_prompts([10, 20], [], [], (240, 320))
    assert lab.tolist() == [1] and box.shape == (0, 4)


def test_prompt_edges_follow_the_pixel_convention():
    """Pixel (i, j) covers x in [j, j+1): a point at x == W is off the image; a box's x2 == W is its last column."""
    size = (240, 320)
    pts, _, _ = validate_prompts([[0, 0], [319.99, 239.99]], None, None, size)
    assert pts.shape == (2, 2)
    for bad in ([320, 5], [5, 240], [-0.01, 5]):
        with pytest.raises(ValueError, match="outside the 320x240 image"):
            validate_prompts([bad], None, None, size)
    _, _, box = validate_prompts(None, None, [[0, 0, 320, 240]], size)
    assert box.tolist() == [[0, 0, 320, 240]]                      # the whole image, unchanged
    _, _, box = validate_prompts(None, None, [[319, 239, 330, 250]], size)
    assert box.tolist() == [[319, 239, 320, 240]]                  # the last pixel, clipped
    for bad in ([320, 0, 330, 10], [0, 240, 10, 250], [-10, 0, 0, 10]):   # touching the border only
        with pytest.raises(ValueError, match="outside"):
            validate_prompts(None, None, [bad], size)
