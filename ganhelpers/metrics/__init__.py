"""Evaluation metrics of generated images, one family per module, each a set of plain functions over
feature arrays (N, D) from any network of :mod:`.features` or over images (uint8 or float
in [-1, 1], NHWC, one size):

- :mod:`.frechet`: FID, the Fréchet distance of feature statistics (Heusel et al. 2017), and the
  Inception Score from class probabilities (Salimans et al. 2016). Lower FID is better; biased
  upwards below ~2,048 samples.
- :mod:`.fid`: FID and the Inception Score of image sources (arrays, folders, datasets, generators)
  streamed through a feature network, and the real statistics' ``.npz`` cache.
- :mod:`.mmd`: ``kid``: do real and generated features come from one distribution? Lower is
  better, 0 = same; unbiased at any sample count (Binkowski et al. 2018).
- :mod:`.prdc`: ``precision_recall``: precision (quality) and recall (coverage of the data)
  (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020). Higher is better.
- :mod:`.swd`: ``sliced_wasserstein``: do local image patches match, scale by scale (pixels, no
  network)? Lower is better (Karras et al. 2018).
- :mod:`.msssim`: ``ms_ssim``: how alike two generated images are: near 1 is mode collapse, lower
  is more diverse; compare with the real data's value (Odena et al. 2017; Karras et al. 2018).
- :mod:`.inception`, :mod:`.features`: the feature extractors: the Keras and 2015-graph Inception
  networks, and every network by name (``inception``, ``digits``, ``none``).
- :mod:`.compute`: any set of them by name (``compute_metrics``) and the real features' cache.
- :mod:`.monitor`: ``MetricsMonitor``, the one training callback for any set of them, FID included.

Bad input (too few samples, NaN features, mixed image sizes) raises a ``ValueError`` that names the
metric and what it needs. ``python -m ganhelpers eval`` (:mod:`ganhelpers.cli`) computes them
between two folders, ``.npz`` files or run folders.

The names below are imported here from their modules so that ``from ganhelpers import metrics``
reaches each as ``metrics.<name>``; each is defined in the module named beside it.
"""

from .compute import (  # noqa: F401
    FEATURE_METRICS,
    IMAGE_METRICS,
    LOWER_IS_BETTER,
    METRICS,
    compute_metrics,
    expand_metric_names,
    features_cache_path,
    load_npz,
    real_features_cached,
    save_features,
)
from .mmd import kid, polynomial_kernel  # noqa: F401
from .monitor import MetricsMonitor  # noqa: F401
from .msssim import WANG_POWER_FACTORS, ms_ssim, ms_ssim_between, ms_ssim_power_factors, ms_ssim_scales  # noqa: F401
from .prdc import PR_METRICS, exact_squared_distances, knn_radii, precision_recall, squared_distance_blocks  # noqa: F401
from .swd import SWD_MIN_SIZE, laplacian_pyramid, pyramid_sizes, sliced_wasserstein  # noqa: F401

__all__ = ["METRICS", "FEATURE_METRICS", "IMAGE_METRICS", "PR_METRICS", "LOWER_IS_BETTER", "WANG_POWER_FACTORS",
           "SWD_MIN_SIZE", "polynomial_kernel", "kid", "squared_distance_blocks", "exact_squared_distances",
           "knn_radii", "precision_recall", "pyramid_sizes", "laplacian_pyramid", "sliced_wasserstein",
           "ms_ssim_scales", "ms_ssim_power_factors", "ms_ssim_between", "ms_ssim", "expand_metric_names",
           "compute_metrics", "features_cache_path", "save_features", "load_npz", "real_features_cached",
           "MetricsMonitor"]
