"""Resize and centre crop, as torchvision's Resize then CenterCrop compute them, done with Pillow.

A Transform is fixed when a data set is opened: its output size is checked against every image's size before
any pixels are read, and its settings enter the data's fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..errors import UsageError


def _size_pair(value: int | tuple[int, int] | list[int], what: str) -> int | tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value >= 1:
            return int(value)
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise UsageError(f"{what} must be a positive integer or a pair (height, width) of them, got {value!r}")


@dataclass(frozen=True)
class Transform:
    """torchvision's Resize (bilinear; an int sets the shorter side) then CenterCrop, done with Pillow."""

    resize: int | tuple[int, int] | None = None
    center_crop: tuple[int, int] | None = None

    @classmethod
    def from_args(cls, resize: int | tuple[int, int] | None, center_crop: int | tuple[int, int] | None) -> Transform:
        """Check the sizes; an int crop is square."""
        size = None if resize is None else _size_pair(resize, "resize")
        crop = None if center_crop is None else _size_pair(center_crop, "center_crop")
        return cls(size, (crop, crop) if isinstance(crop, int) else crop)

    @property
    def active(self) -> bool:
        return self.resize is not None or self.center_crop is not None

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after Resize, as torchvision computes it (the longer side is truncated)."""
        if self.resize is None:
            return height, width
        if isinstance(self.resize, tuple):
            return self.resize
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize * long / short)
        return (new_long, self.resize) if width <= height else (self.resize, new_long)

    def output_size(self, height: int, width: int, origin: str) -> tuple[int, int]:
        """(height, width) of an image of this size after the transform; a crop larger than the image is refused."""
        height, width = self.resized_size(height, width)
        if self.center_crop is None:
            return height, width
        if self.center_crop[0] > height or self.center_crop[1] > width:
            raise DataError(
                f"{origin}: center crop {self.center_crop[0]}x{self.center_crop[1]} (HxW) is larger than "
                f"the {'resized ' if self.resize else ''}image, {height}x{width}; crop less or resize more"
            )
        return self.center_crop

    def apply(self, image):
        """The transformed PIL image (bilinear resize, then a centred crop)."""
        from PIL import Image

        height, width = self.resized_size(image.height, image.width)
        if (height, width) != (image.height, image.width):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        if self.center_crop is not None:
            crop_h, crop_w = self.center_crop
            top, left = round((height - crop_h) / 2.0), round((width - crop_w) / 2.0)
            image = image.crop((left, top, left + crop_w, top + crop_h))
        return image

    def apply_array(self, image: np.ndarray) -> np.ndarray:
        """Transform one (C, H, W) uint8 or float image channel by channel (Pillow mode L or F); same dtype."""
        from PIL import Image

        if image.dtype == np.uint8:
            return np.stack([np.asarray(self.apply(Image.fromarray(channel, mode="L"))) for channel in image])
        channels = [np.asarray(self.apply(Image.fromarray(channel.astype(np.float32), mode="F"))) for channel in image]
        return np.clip(np.stack(channels), 0.0, 1.0)  # bilinear weights are convex: clip only rounding

    def settings(self) -> dict:
        return {"resize": self.resize, "center_crop": self.center_crop}
