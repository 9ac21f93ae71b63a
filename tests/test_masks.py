from __future__ import annotations

import numpy as np
import pytest

from doorbell.config import Polygon
from doorbell.errors import ConfigError
from doorbell.masks import apply_privacy_masks, rasterise_polygons

LEFT_HALF = Polygon(points=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))


def test_rasterise_covers_inside_and_edges_and_is_cached_read_only():
    mask = rasterise_polygons([LEFT_HALF], 40, 20)
    assert mask.shape == (20, 40)
    assert mask[:, :20].all() and not mask[:, 21:].any()
    assert rasterise_polygons([LEFT_HALF], 40, 20) is mask
    with pytest.raises(ValueError):
        mask[0, 0] = 1


def test_full_frame_polygon_covers_every_pixel():
    full = Polygon(points=((0, 0), (1, 0), (1, 1), (0, 1)))
    assert rasterise_polygons([full], 33, 17).all()


@pytest.mark.parametrize("shape", [(24, 32, 3), (24, 32)])
def test_privacy_mask_blacks_out_bgr_and_grey(shape):
    image = np.full(shape, 200, np.uint8)
    out = apply_privacy_masks(image, [LEFT_HALF])
    assert not out[:, :16].any()
    assert (out[:, 17:] == 200).all()
    assert (image == 200).all()  # not in place by default
    same = apply_privacy_masks(image, [LEFT_HALF], in_place=True)
    assert same is image and not image[:, :16].any()


def test_no_polygons_returns_unchanged_copy_and_bad_input_is_refused():
    image = np.full((8, 8), 9, np.uint8)
    out = apply_privacy_masks(image, [])
    assert out is not image and (out == 9).all()
    with pytest.raises(ConfigError):
        apply_privacy_masks(image.astype(np.float32), [LEFT_HALF])
    with pytest.raises(ConfigError):
        apply_privacy_masks(image, [[(0, 0), (1, 1)]])
