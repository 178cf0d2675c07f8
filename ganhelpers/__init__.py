"""ganhelpers: the small, tested helper package behind the GAN research notebooks.

Label convention everywhere: real = 1, fake = 0. Images are float32 in [-1, 1], NHWC.
"""

__version__ = "0.1.0"
