"""Image grids, PNG writing and GIF assembly. Inputs are NHWC in [-1, 1] or uint8."""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .experiment import atomic_write


def to_uint8(images) -> np.ndarray:
    """Map float images in [-1, 1] (or uint8 images, unchanged) to uint8 in [0, 255]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    images = images.astype(np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def stretch(images) -> np.ndarray:
    """Float images (N, H, W, C) mapped linearly from the batch's own [min, max] to [-1, 1]: a batch
    that spans a sliver of [-1, 1] (a generator after a few steps is nearly flat grey) shown with full
    contrast. One map for the whole batch, so the images still compare; a constant batch is unchanged."""
    x = np.asarray(images, dtype=np.float32)
    lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
    return x if hi <= lo else (x - lo) * (2.0 / (hi - lo)) - 1.0


def make_grid(images, ncols: int | None = None, padding: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile N images (N, H, W, C) into one uint8 image, ``ncols`` per row (default: square-ish).

    Single-channel images stay single-channel (H', W', 1).
    """
    images = to_uint8(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"make_grid wants (N, H, W, C) images, got shape {images.shape}")
    n, h, w, c = images.shape
    if n == 0:
        raise ValueError("make_grid got no images")
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.full((nrows * (h + padding) + padding, ncols * (w + padding) + padding, c),
                   pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def png_bytes(image) -> bytes:
    """Encode one (H, W, C) or (H, W) image as PNG bytes."""
    from PIL import Image

    image = to_uint8(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | os.PathLike, image) -> Path:
    """Write one image as a PNG, atomically (a crash never leaves a half-written frame)."""
    return atomic_write(path, png_bytes(image))


def save_grid(path: str | os.PathLike, images, ncols: int | None = None) -> Path:
    return save_png(path, make_grid(images, ncols))


def read_png(path: str | os.PathLike) -> np.ndarray:
    """One frame or grid file as uint8 (through the checked decoder: a decompression bomb is refused)."""
    from .data import _open_checked

    with _open_checked(path) as im:
        im.load()
        return np.asarray(im)


MAX_GIF_FRAMES = 100   # a longer run's frames are thinned evenly (first and last kept)
MAX_GIF_SIDE = 512     # larger frames are shrunk (a 64-image grid of 64 px birds is 530 px)


def thin(items: Sequence, max_items: int) -> list:
    """At most ``max_items`` of ``items``, evenly spaced, the first and the last always kept."""
    items = list(items)
    if max_items < 2 or len(items) <= max_items:
        return items if max_items >= 2 else items[-1:]
    picks = np.unique(np.round(np.linspace(0, len(items) - 1, max_items)).astype(int))
    return [items[i] for i in picks]


def _bounded(array: np.ndarray, max_side: int | None) -> np.ndarray:
    if not max_side or max(array.shape[:2]) <= max_side:
        return array
    from PIL import Image

    scale = max_side / max(array.shape[:2])
    size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
    return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.LANCZOS))


def assemble_gif(frames: Sequence[str | os.PathLike] | Iterable[np.ndarray], out_path: str | os.PathLike,
                 fps: float = 5.0, loop: int = 0, max_frames: int | None = MAX_GIF_FRAMES,
                 max_side: int | None = MAX_GIF_SIDE) -> Path:
    """Assemble frames (PNG paths or uint8 arrays, all one size) into an animated GIF.

    At most ``max_frames`` frames (evenly thinned, first and last kept; None: all) of at most
    ``max_side`` pixels a side (larger frames are shrunk; None: as they are), so a long run's GIF
    stays a few MB. Only the kept frames are read. Written atomically with imageio; ``loop=0``
    loops forever. Returns ``out_path``.
    """
    import imageio.v2 as imageio

    frames = list(frames)
    if not frames:
        raise ValueError(f"no frames to assemble into {out_path}")
    if max_frames:
        frames = thin(frames, max_frames)
    arrays, bad = [], []
    for f in frames:
        if not isinstance(f, (str, os.PathLike)):
            arrays.append(to_uint8(f))
            continue
        try:  # a damaged frame file (a full disk, a hand edit) is skipped with a warning, not fatal
            arrays.append(read_png(f))
        except Exception as err:  # noqa: BLE001 - any decoder error means "skip this frame"
            bad.append(f"{f} ({type(err).__name__}: {err})")
    if bad:
        logging.getLogger(__name__).warning("skipped %d unreadable frame(s) of %d for %s: %s", len(bad),
                                            len(frames), out_path, "; ".join(bad[:5]))
    if not arrays:
        raise ValueError(f"none of the {len(frames)} frames for {out_path} is a readable image (first: {bad[0]})")
    arrays = [a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a for a in arrays]
    arrays = [_bounded(a, max_side) for a in arrays]
    buf = io.BytesIO()
    imageio.mimsave(buf, arrays, format="GIF", duration=1000.0 / fps, loop=loop)
    return atomic_write(out_path, buf.getvalue())


class GifHTML:
    """A GIF as an HTML ``<img>`` holding its bytes (``str()`` is the tag); see :func:`gif_html`."""

    def __init__(self, path: str | os.PathLike, html_tag: str, frames: int):
        self.path, self.html, self.frames = Path(path), html_tag, frames

    def _repr_html_(self) -> str:  # what Jupyter, Colab and nbconvert's HTML export show
        return self.html

    def __str__(self) -> str:
        return self.html

    def __repr__(self) -> str:  # the text/plain beside it: short, not the bytes again
        return f"<GIF {self.path.name}: {self.frames} frames>"


def gif_html(path: str | os.PathLike, width: int | None = None) -> GifHTML:
    """The GIF at ``path`` embedded in an HTML ``<img src="data:image/gif;base64,...">``.

    ``display(images.gif_html(path))`` in a notebook shows the animation in Jupyter, in Colab and in
    an executed notebook exported to HTML (nbconvert renders no ``image/gif`` output, only its
    text), and the notebook file carries it without the run folder. ``width`` in pixels (None: the
    GIF's own size)."""
    data = Path(path).read_bytes()
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError(f"{path} is not a GIF (it starts with {data[:6]!r})")
    size = f' width="{int(width)}"' if width else ""
    tag = (f'<img src="data:image/gif;base64,{base64.b64encode(data).decode("ascii")}"{size} '
           f'alt="{html.escape(Path(path).name)}">')
    return GifHTML(path, tag, gif_frame_count(path))


def gif_frame_count(path: str | os.PathLike) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)
