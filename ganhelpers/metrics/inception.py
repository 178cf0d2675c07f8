"""Inception feature extractors for FID and the Inception Score (see :mod:`ganhelpers.metrics.fid`).

Two extractors give the 2048-d pool_3 features (the input to FID, Heusel et al. 2017):

``tf-inception-2015-12-05``
    The frozen 2015 Inception graph (``classify_image_graph_def.pb`` inside
    https://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz), the network
    that TTUR's reference FID code and pytorch-fid (a port of its weights) use. Images are fed to
    the graph's ``ExpandDims:0`` tensor as float 0..255 at their own size, so the graph's own
    bilinear resize to 299x299 runs exactly as in TTUR: **use it for numbers you compare with
    published FIDs.** Inception Score uses its 1008-way logits as in Salimans et al. 2016's code
    (pool_3 times the ``softmax/logits/MatMul`` weight, no bias).
``keras-inceptionv3-imagenet``
    ``keras.applications.InceptionV3`` with ImageNet weights, global-average-pool output (2048-d).
    A different training of the same architecture: FIDs are consistent among themselves (fine for
    ranking your own models) but typically differ from published values by a few points.
``keras-inceptionv3-random``
    The same network with random weights (``weights=None``): runs offline, tests the plumbing;
    every number it produces is labelled :data:`RANDOM_NOTE`.

A ``.pb`` is a program, not data: TensorFlow runs whatever ops it holds, file reads and writes
included. Every GraphDef is therefore checked against :data:`ALLOWED_GRAPH_OPS` (the pure tensor
ops the 2015 graph uses) before it is imported, and refused with the names of any other ops.

Preprocessing (Keras extractors): uint8 [0, 255] or float [-1, 1] NHWC; 1-channel images are
repeated to RGB; resized to 299x299 with ``tf.image.resize(method="bilinear", antialias=True)``
(antialiasing only changes downscaling, where plain bilinear would alias).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

log = logging.getLogger(__name__)

INCEPTION_2015_URL = "https://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
INCEPTION_2015_ARCHIVE = "inception-2015-12-05.tgz"
INCEPTION_2015_PB = "classify_image_graph_def.pb"
# No sha256 of the archive is published by TensorFlow, and none could be found in public code to cite
# (or computed here: no download in development). Until one is pinned, the first download's sha256
# is recorded beside it and later uses are checked against it (ganhelpers.data.fetch); the op
# allow-list below is what keeps a tampered graph from doing harm.
INCEPTION_2015_SHA256: str | None = None
MAX_GRAPH_BYTES = 256 << 20  # the real .pb is about 92 MB
# The op types of the 2015 graph: decoding and resizing the input, convolutions with their batch
# normalisation, pooling, concatenation, the classifier; all of them pure functions of tensors.
ALLOWED_GRAPH_OPS = frozenset({
    "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "NoOp", "CheckNumerics",
    "DecodeJpeg", "Cast", "ExpandDims", "Squeeze", "Reshape", "Shape", "ResizeBilinear",
    "Add", "AddV2", "Sub", "Mul", "RealDiv", "BiasAdd", "MatMul", "Conv2D",
    "BatchNormWithGlobalNormalization", "FusedBatchNorm", "FusedBatchNormV3", "Relu", "Relu6",
    "MaxPool", "AvgPool", "Concat", "ConcatV2", "Softmax",
})


class UnsafeGraph(ValueError):
    """A GraphDef with ops outside :data:`ALLOWED_GRAPH_OPS` (file access, Python calls, ...)."""


def check_graph_ops(graph_def, source="the graph") -> None:
    """Raise :class:`UnsafeGraph` naming every op type of ``graph_def`` (its nodes and any function
    library) outside :data:`ALLOWED_GRAPH_OPS`; called before a GraphDef is imported."""
    ops = {n.op for n in graph_def.node}
    for function in graph_def.library.function:
        ops |= {n.op for n in function.node_def}
    ops |= {f.signature.name for f in graph_def.library.function}  # calls to them are ops too
    outside = sorted(ops - ALLOWED_GRAPH_OPS)
    if outside:
        raise UnsafeGraph(f"{source} holds ops outside the FID graph's allow-list: {', '.join(outside)}. A .pb is "
                          "code that TensorFlow runs (these could read or write files); refusing to load it. Use "
                          f"{INCEPTION_2015_PB} from {INCEPTION_2015_URL}")
def check_graph_size(graph_def, file_bytes: int, source="the graph") -> None:
    """Refuse a graph that would grow far beyond its file when run: a ``Const`` whose declared
    shape holds more values than it stores (one value broadcast to a 10 GB tensor), constants
    adding up to more than :data:`MAX_GRAPH_BYTES`, or a resize to more than 1024 px a side (the
    2015 graph resizes to 299). Raises :class:`UnsafeGraph`; called before the graph is imported."""
    declared = 0
    consts = {}
    for node in graph_def.node:
        if node.op != "Const" or "value" not in node.attr:
            continue
        tensor = node.attr["value"].tensor
        count = 1
        for dim in tensor.tensor_shape.dim:
            count *= max(int(dim.size), 0)
        itemsize = tf.dtypes.as_dtype(tensor.dtype).size if tensor.dtype else 4
        declared += count * itemsize
        consts[node.name] = (count, tensor)
    if declared > min(MAX_GRAPH_BYTES, 2 * file_bytes + (1 << 20)):
        raise UnsafeGraph(f"{source} declares {declared:,} bytes of constants in a {file_bytes:,}-byte file (a "
                          "graph that expands when run, not the 2015 Inception graph); refusing to load it")
    for node in graph_def.node:
        if node.op.startswith("Resize") and len(node.input) > 1:
            size = consts.get(node.input[1].split(":")[0].lstrip("^"))
            if size is not None and size[0] <= 4:
                values = tf.make_ndarray(size[1]).ravel().tolist()
                if any(v > 1024 for v in values):
                    raise UnsafeGraph(f"{source} resizes to {values} in {node.name}: not the 2015 Inception graph "
                                      "(it resizes to 299x299); refusing to load it")


# Tensor names inside the 2015 graph (TTUR imports it under the prefix "FID_Inception_Net/").
GRAPH_INPUT = "ExpandDims:0"        # float 0..255, (N, H, W, 3); the graph resizes to 299x299
GRAPH_POOL3 = "pool_3:0"            # (N, 1, 1, 2048)
GRAPH_LOGITS_MATMUL = "softmax/logits/MatMul"  # its second input is the (2048, 1008) weight
INPUT_SIZE = 299
# where keras.applications.InceptionV3(weights="imagenet") downloads from (named in errors)
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
RANDOM_NOTE = "(random InceptionV3 weights: plumbing only, not comparable)"

_CACHE: dict[str, "Extractor"] = {}


def to_unit_range(images) -> tf.Tensor:
    """uint8 [0, 255] or float [-1, 1] -> float32 [-1, 1], 3 channels (grayscale is repeated)."""
    x = tf.convert_to_tensor(images)
    x = tf.cast(x, tf.float32) / 127.5 - 1.0 if x.dtype == tf.uint8 else tf.cast(x, tf.float32)
    if x.shape.rank != 4:
        raise ValueError(f"images must be a batch (N, H, W, C), got shape {x.shape}")
    if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
    elif x.shape[-1] != 3:
        raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}")
    return x


def resize_299(x: tf.Tensor, size: int = INPUT_SIZE) -> tf.Tensor:
    """Bilinear resize to ``size`` x ``size`` with antialiasing (identity when already that size)."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    return tf.image.resize(x, (size, size), method="bilinear", antialias=True)


class Extractor:
    """Maps a batch of images (uint8 or float [-1, 1], NHWC) to (N, 2048) float32 features.

    ``preprocess`` turns a raw batch into the network's input (run inside ``tf.data``);
    ``features`` and ``probabilities`` take preprocessed batches; calling the extractor does both.
    ``name`` identifies the network in caches and results; ``note`` is appended to every printed
    number (non-empty for random weights).
    """

    name = "extractor"
    note = ""
    dims = 2048

    def preprocess(self, images) -> tf.Tensor:
        raise NotImplementedError

    has_classifier = False
    _run = None  # subclasses: preprocessed batch -> (pool features, [classifier probabilities])

    def features(self, batch) -> np.ndarray:
        if self._run is None:
            raise NotImplementedError
        return self._run(tf.convert_to_tensor(batch, tf.float32))[0].numpy()

    def probabilities(self, batch) -> np.ndarray:
        if not self.has_classifier:
            raise NotImplementedError(f"{self.name} has no classifier head for the Inception Score")
        return self._run(tf.convert_to_tensor(batch, tf.float32))[1].numpy()

    def __call__(self, images) -> np.ndarray:
        return self.features(self.preprocess(images))

    def label(self, value: float) -> str:
        """``value`` formatted with the extractor's note (the random-weights warning)."""
        return f"{value:.6g} {self.note}".rstrip()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class KerasInception(Extractor):
    """``keras.applications.InceptionV3`` pool features (``avg_pool``, 2048-d) and its softmax.

    ``weights``: ``"imagenet"`` (downloaded by Keras), ``None`` (random; plumbing only) or the path
    of a Keras weights file (a ``*notop*`` file has no classifier, so no Inception Score).
    """

    def __init__(self, weights=None):
        import keras

        self.weights = weights
        if weights is None:
            self.name, self.note = "keras-inceptionv3-random", RANDOM_NOTE
        elif weights == "imagenet":
            self.name = "keras-inceptionv3-imagenet"
        else:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"InceptionV3 weights file {path} not found; pass weights='imagenet', "
                                        "None, or the path of a Keras InceptionV3 weights file")
            self.name = f"keras-inceptionv3-file-{path.name.split('.')[0]}"
        include_top = weights is None or weights == "imagenet" or "notop" not in Path(str(weights)).name
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")  # features in float32 even under mixed precision
        try:
            base = keras.applications.InceptionV3(
                include_top=include_top, weights=None if weights is None else str(weights),
                input_shape=(INPUT_SIZE, INPUT_SIZE, 3), pooling=None if include_top else "avg")
        except Exception as err:  # noqa: BLE001 - Keras wraps a failed weights download in a plain Exception
            if weights != "imagenet" or "fetch failure" not in str(err).lower() and "url" not in str(err).lower():
                raise
            from ..data import DownloadError

            raise DownloadError("inception_v3_weights_tf_dim_ordering_tf_kernels.h5", KERAS_WEIGHTS_URL,
                                Path.home() / ".keras" / "models", err) from None
        finally:
            keras.config.set_dtype_policy(policy)
        pool = base.get_layer("avg_pool").output
        outputs = [pool, base.output] if include_top else [pool, pool]
        self.has_classifier = include_top
        self.model = keras.Model(base.input, outputs, name="inception_features")
        self._run = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def preprocess(self, images) -> tf.Tensor:
        return resize_299(to_unit_range(images))


class Inception2015Graph(Extractor):
    """The frozen 2015 Inception graph (``classify_image_graph_def.pb``) as a TF2 function.

    The GraphDef is imported with ``tf.compat.v1.wrap_function``; our batch replaces the graph's
    ``ExpandDims:0`` (as TTUR feeds ``FID_Inception_Net/ExpandDims:0``) and ``pool_3:0`` is
    returned. ``resize="graph"`` (default) feeds images at their own size so the graph's bilinear
    resize does the work exactly as in TTUR; ``resize="antialias"`` resizes to 299 first with
    :func:`resize_299` (better for downscaling large images, not TTUR's numbers).
    """

    name = "tf-inception-2015-12-05"

    def __init__(self, path, resize: str = "graph"):
        path = Path(path)
        if path.suffix in (".tgz", ".gz"):
            path = extract_2015_graph(path)
        if not path.is_file():
            raise FileNotFoundError(f"2015 Inception graph {path} not found; download {INCEPTION_2015_URL} with "
                                    "ganhelpers.metrics.inception.download_2015_graph(dir) (or by hand) and pass the "
                                    f"{INCEPTION_2015_PB} inside it")
        if resize not in ("graph", "antialias"):
            raise ValueError(f"resize must be 'graph' or 'antialias', got {resize!r}")
        self.path, self.resize = path, resize
        graph_def = tf.compat.v1.GraphDef()
        if path.stat().st_size > MAX_GRAPH_BYTES:
            raise ValueError(f"{path} has {path.stat().st_size:,} bytes, over {MAX_GRAPH_BYTES:,}: not the 2015 graph")
        try:
            graph_def.ParseFromString(path.read_bytes())
        except Exception as err:  # noqa: BLE001 - protobuf raises its own DecodeError
            raise ValueError(f"{path} is not a frozen GraphDef .pb ({err})") from err
        check_graph_ops(graph_def, str(path))
        check_graph_size(graph_def, path.stat().st_size, str(path))
        nodes = {n.name for n in graph_def.node}
        for needed in (GRAPH_INPUT, GRAPH_POOL3):
            if needed.split(":")[0] not in nodes:
                raise ValueError(f"{path} has no tensor {needed!r}: is it {INCEPTION_2015_PB} from "
                                 f"{INCEPTION_2015_ARCHIVE}?")
        self.has_classifier = GRAPH_LOGITS_MATMUL in nodes

        def imported(x):
            wanted = [GRAPH_POOL3] + ([GRAPH_LOGITS_MATMUL] if self.has_classifier else [])
            out = tf.compat.v1.import_graph_def(graph_def, input_map={GRAPH_INPUT: x},
                                                return_elements=wanted, name="FID_Inception_Net")
            if out[0].shape.rank is None or out[0].shape[-1] != 2048:
                raise UnsafeGraph(f"{path}: {GRAPH_POOL3} has shape {out[0].shape}, not (N, 1, 1, 2048): not the "
                                  "2015 Inception graph")
            pool3 = tf.reshape(out[0], [-1, 2048])
            if not self.has_classifier:
                return pool3, pool3
            weight = out[1].inputs[1]  # Salimans et al. 2016's code: logits = pool3 @ W (no bias)
            return pool3, tf.nn.softmax(tf.matmul(pool3, weight))

        spec = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._run = tf.compat.v1.wrap_function(imported, [spec])

    def preprocess(self, images) -> tf.Tensor:
        x = to_unit_range(images)
        if self.resize == "antialias":
            x = resize_299(x)
        return (x + 1.0) * 127.5  # the graph's input range is 0..255


def inception_extractor(weights="imagenet", resize: str = "graph") -> Extractor:
    """The extractor for ``weights`` (built once per process and cached).

    ``weights``: ``"imagenet"`` (Keras InceptionV3), ``None`` / ``"none"`` (random weights,
    plumbing only), a ``.pb`` or ``.tgz`` path (the 2015 FID graph: published-comparable numbers)
    or a Keras weights file path.
    """
    if isinstance(weights, str) and weights.lower() in ("none", "random"):
        weights = None
    key = f"{weights}|{resize}"
    if key not in _CACHE:
        if weights is not None and weights != "imagenet" and Path(str(weights)).suffix in (".pb", ".tgz", ".gz"):
            _CACHE[key] = Inception2015Graph(weights, resize=resize)
        else:
            _CACHE[key] = KerasInception(weights)
        log.info("built FID extractor %s %s", _CACHE[key].name, _CACHE[key].note)
    return _CACHE[key]


def default_extractor() -> Extractor:
    """The extractor named by ``$GANHELPERS_FID_WEIGHTS`` (imagenet | none | a file), else ImageNet."""
    return inception_extractor(os.environ.get("GANHELPERS_FID_WEIGHTS", "imagenet"))


def extract_2015_graph(archive, dest=None) -> Path:
    """Pull ``classify_image_graph_def.pb`` out of ``inception-2015-12-05.tgz`` (next to it by default)."""
    import tarfile

    archive = Path(archive)
    dest = Path(dest) if dest is not None else archive.parent
    target = dest / INCEPTION_2015_PB
    if target.is_file():
        return target
    with tarfile.open(archive) as tar:
        member = next((m for m in tar.getmembers() if Path(m.name).name == INCEPTION_2015_PB and m.isfile()), None)
        if member is None:
            raise ValueError(f"{archive} holds no {INCEPTION_2015_PB}: is it {INCEPTION_2015_ARCHIVE}?")
        if member.size > MAX_GRAPH_BYTES:
            raise ValueError(f"{archive}: {member.name} has {member.size:,} bytes, over {MAX_GRAPH_BYTES:,}: not the "
                             "2015 graph; refusing to extract it")
        from ..experiment import atomic_write

        atomic_write(target, tar.extractfile(member).read())
    return target


def download_2015_graph(data_dir=None, url: str = INCEPTION_2015_URL, sha256: str | None = INCEPTION_2015_SHA256
                        ) -> Path:
    """Download ``inception-2015-12-05.tgz`` (88 MB, https) into ``data_dir`` and return the ``.pb``
    path. The archive is checked against ``sha256``, or, without one, against the sha256 recorded at
    its first download (see :func:`ganhelpers.data.fetch`); the graph's ops are checked when it loads."""
    from ..data import DEFAULT_DATA_DIR, fetch

    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR / "inception"
    if (data_dir / INCEPTION_2015_PB).is_file():
        return data_dir / INCEPTION_2015_PB
    return extract_2015_graph(fetch(url, data_dir, INCEPTION_2015_ARCHIVE, sha256=sha256), data_dir)
