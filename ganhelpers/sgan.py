"""Semi-supervised GAN: the discriminator is also the classifier (Salimans et al. 2016, section 5).

A classifier with K logits ``l_k`` becomes a K+1-class discriminator by adding a "fake" class whose
logit is fixed at 0 (the logit trick: softmax is unchanged by shifting all logits, so one of them
can be pinned). Then, with ``Z = sum_k exp(l_k)``::

    D(x) = p(real | x) = Z / (Z + 1) = sigmoid(logsumexp(l))
    L_sup   = cross-entropy of the label over the K logits (labelled real images)
    L_unsup = -E_real[log D(x)] - E_fake[log(1 - D(G(z)))]
            = -E_real[lse(l) - softplus(lse(l))] + E_fake[softplus(lse(l))]

Unlabelled images teach D what digits look like (the real/fake game shapes its features), the
fakes sharpen the boundary of the data, and the few labels only name the clusters. G is trained by
feature matching, ``|| E f(x) - E f(G(z)) ||^2`` on D's last hidden layer, which Salimans et al.
found gives the best classifier (section 3.1), or by the standard non-saturating loss.

The workshop's two-head form shares the same body: a K-way softmax head for the labels plus a
separate sigmoid real/fake unit (``formulation="two_head"``).

Also here: balanced seeded labelled subsets, the offline digits split, the supervised-only baseline
on the same body and labels, and one function that trains both and writes ``results.json``.
"""

from __future__ import annotations

import copy
import logging

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from . import data as data_lib
from . import summaries
from .configs import preset_config
from .distribute import global_batch_mean, several_replicas
from .experiment import Run, open_run, seed_everything
from .layers import Dropout, GaussianNoise
from .models import GAN

log = logging.getLogger(__name__)

FORMULATIONS = ("k_plus_one", "two_head")
GENERATOR_LOSSES = ("feature_matching", "standard")

SGAN_PRESETS: dict[str, dict] = {
    # MNIST with 100 labels as Salimans et al. 2016 (section 5.1) and their released code
    # (openai/improved-gan, mnist_svhn_cifar10/train_mnist_feature_matching.py, "the code" below) do it.
    "full": {
        "experiment": "sgan_mnist",
        "seed": 0,  # draws the 100 labelled images (the code's --seed_data); --set seed=3 draws others
        # the code: batch_size 100 for the labelled, the unlabelled and the generated batches.
        # validation: 10000 chooses settings on the last 10,000 training images (see prepare_data);
        # 0 (the default here) trains on all 60,000 and evaluates on the test set. path: a local
        # mnist.npz (None: DATA_DIR/mnist.npz, else Keras' download).
        "data": {"name": "mnist", "image_size": 28, "channels": 1, "batch_size": 100, "labelled_batch_size": 100,
                 "validation": 0, "path": None},
        # the code: --count 10 per class; the labelled images stay in the unlabelled set (trainx_unl is
        # all of trainx), so disjoint=False.
        "labels": {"per_class": 10, "disjoint": False},
        # the code's G: 100-d noise, Dense 500-500 with BatchNorm and softplus, a weight-normalised
        # (nn.l2normalize, trainable scale) output layer; sigmoid in [0, 1] there, tanh in [-1, 1] here.
        "generator": {"latent_dim": 100, "units": [500, 500], "weight_norm": True},
        # the code's D: Dense 1000-500-250-250-250 + 10, ReLU, every layer weight-normalised (hidden
        # scales frozen after the data-dependent init on 500 images, the output's trainable), Gaussian
        # noise std 0.3 on the input and 0.5 after every hidden layer. The input noise is doubled to 0.6
        # because our images are in [-1, 1] (twice the range of their [0, 1]); the hidden noise needs no
        # change, the init puts every hidden pre-activation at unit variance in both.
        "discriminator": {"body": "mlp", "units": [1000, 500, 250, 250, 250], "activation": "relu",
                          "weight_norm": True, "init_images": 500, "input_noise": 0.6, "hidden_noise": 0.5,
                          "dropout": 0.0},
        # the code: loss_unl = 0.5 * (-E lse(l_real) + E softplus(lse(l_real)) + E softplus(lse(l_fake)))
        # with --unlabeled_weight 1, i.e. our unsupervised loss (paper eq. 5) weighted 0.5; G by feature
        # matching on the last hidden layer (layers[-3]: the 250 ReLU units before the noise).
        # average_decay: the code tests D with an average of its weights (disc_param_avg, 1e-4 per step
        # from zero over 180,000 steps); a shorter run needs a shorter average: 0.999, debiased; both
        # figures are in results.json. evaluate_average: which one is reported. Chosen on validation
        # (docs/sgan_mnist_results.md, 2 December 2026, 50 and 80 epochs): the average beat D's own weights
        # at every epoch from 17 on, 98.30% against 98.04% at epoch 50, 98.50% against 98.32% at 80 (at
        # 15 epochs, the first session's budget, it had been the other way round: 89.6% against 91.0%,
        # the average still holding the weights of an epoch-10 spike).
        "sgan": {"formulation": "k_plus_one", "generator_loss": "feature_matching", "unsup_weight": 0.5,
                 "average_decay": 0.999, "evaluate_average": True},
        # the code: Adam(lr 0.003, mom1 = beta_1 0.5) for D and G, the rate constant (no decay in the
        # MNIST script), 300 epochs of 600 steps. 300 epochs do not fit a CPU session: measured here for
        # 80 (test accuracy 98.71% +- 0.10% over 3 label seeds, validation 98.50%; one feature-matching
        # spike near epoch 10 from which every run recovered; see docs/sgan_mnist_results.md).
        # adam_epsilon: the code's adam_updates divides by sqrt(v + 1e-8), an epsilon of about 1e-4.
        "training": {"epochs": 300, "d_lr": 3e-3, "g_lr": 3e-3, "beta_1": 0.5, "adam_epsilon": 1e-4,
                     "snapshot_every": 600,
                     "checkpoint_every_steps": None, "checkpoint_every_epochs": 5, "keep_checkpoints": 3},
        # 10 x 600 steps on 100 labels: far past the baseline's convergence (its accuracy stops rising
        # within ~2 epochs: every step sees all 100 labels).
        "baseline": {"epochs": 10, "lr": 1e-3},
        # The notebook's accuracy-vs-labels sweep: labels per class (None = every label), shorter runs.
        "sweep": {"per_class": [2, 5, 10, 20, None], "epochs": 50},
    },
    # Offline: the scikit-learn digits at 8x8, a seeded stratified 1,297/500 split, 5 labels per
    # class; the same MLP recipe, smaller. About half a minute per SGAN run on a 2-core CPU.
    "digits": {
        "experiment": "sgan_digits",
        "seed": 0,
        "data": {"name": "digits", "image_size": 8, "channels": 1, "batch_size": 100, "labelled_batch_size": 100,
                 "test_size": 500},
        "labels": {"per_class": 5, "disjoint": True},
        "generator": {"latent_dim": 32, "units": [128, 128]},
        "discriminator": {"body": "mlp", "units": [256, 128, 64], "input_noise": 0.6, "hidden_noise": 0.5,
                          "dropout": 0.0},
        "sgan": {"formulation": "k_plus_one", "generator_loss": "feature_matching", "unsup_weight": 1.0},
        "training": {"epochs": 40, "d_lr": 1e-3, "g_lr": 1e-3, "beta_1": 0.5, "snapshot_every": 60,
                     "checkpoint_every_steps": None, "checkpoint_every_epochs": 10, "keep_checkpoints": 2},
        # The baseline's test accuracy stops rising after ~5 of these epochs (each step sees all 50 labels).
        "baseline": {"epochs": 20, "lr": 1e-3},
        "sweep": {"per_class": [2, 5, 20, None], "epochs": 40},
    },
}
# The workshop preset: the offline digits recipe as it is (0.3 minutes per run on 2 cores: the
# README's workshop table).
SGAN_PRESETS["cpu"] = copy.deepcopy(SGAN_PRESETS["digits"])
# The notebook's smoke preset: the digits recipe for a few epochs.
SGAN_PRESETS["smoke"] = copy.deepcopy(SGAN_PRESETS["digits"])
SGAN_PRESETS["smoke"]["experiment"] = "sgan_smoke"
SGAN_PRESETS["smoke"]["training"].update(epochs=3, snapshot_every=10, checkpoint_every_epochs=1)
SGAN_PRESETS["smoke"]["baseline"].update(epochs=3)
SGAN_PRESETS["smoke"]["sweep"] = {"per_class": [2, 5], "epochs": 1}


def sgan_config(preset: str = "digits", **overrides) -> dict:
    """A deep copy of an SGAN preset (``full``, ``digits``, ``smoke``); keyword arguments replace whole
    top-level values or update sections (``sgan_config("digits", labels={"per_class": 10})``)."""
    return {"model": "sgan", **preset_config(SGAN_PRESETS, preset, "SGAN", **overrides)}


# -- data -----------------------------------------------------------------------------------------

def select_labelled(labels, per_class=None, seed: int = 0, disjoint: bool = True, fraction: float | None = None):
    """Indices of a balanced, seeded labelled subset and of the unlabelled rest.

    ``per_class=n`` takes exactly n images of every class; ``fraction=0.5`` takes that fraction of
    every class (the workshop's "half of the training set"); neither (or ``per_class=None``) labels
    everything. ``disjoint=True`` leaves the labelled images out of the unlabelled set; False keeps
    every image unlabelled too, as Salimans et al.'s code does. Returns ``(labelled, unlabelled)``,
    sorted int arrays; the same seed gives the same indices.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    if per_class is not None and fraction is not None:
        raise ValueError("give per_class or fraction, not both")
    if per_class is None and fraction is None:
        everything = np.arange(len(labels))
        return everything, everything.copy()
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if per_class is not None and per_class > counts.min():
        raise ValueError(f"per_class={per_class} but class {classes[counts.argmin()]} has only {counts.min()} "
                         "images; ask for fewer labels per class")
    chosen = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        n = per_class if per_class is not None else int(round(fraction * len(members)))
        chosen.append(rng.choice(members, size=n, replace=False))
    labelled = np.sort(np.concatenate(chosen))
    unlabelled = np.setdiff1d(np.arange(len(labels)), labelled) if disjoint else np.arange(len(labels))
    return labelled, unlabelled


def digits_split(image_size: int = 8, test_size: int = 500, seed: int = 0, channels: int = 1) -> dict:
    """The scikit-learn digits as a fixed, stratified train/test split (1,297/500 by default).

    uint8 ``{"x_train", "y_train", "x_test", "y_test"}`` like :func:`ganhelpers.data.mnist`. The split
    depends on ``seed`` only, so every run and the baseline see the same test set.
    """
    from sklearn.model_selection import train_test_split

    d = data_lib.digits(image_size, channels)
    x_train, x_test, y_train, y_test = train_test_split(d["images"], d["labels"], test_size=test_size,
                                                        stratify=d["labels"], random_state=seed)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load_data(config: dict, data_dir=None) -> dict:
    """Train/test arrays for a config's ``data`` section: ``mnist`` (``data.path``, else ``data_dir/mnist.npz``,
    else downloads: see :func:`ganhelpers.data.mnist`) or ``digits`` (offline)."""
    d = config["data"]
    if d["name"] == "mnist":
        # a mirror or a test's file:// URL (url, md5), or a local file (path: used if its arrays are MNIST's)
        source = {k: d[k] for k in ("url", "md5", "path") if d.get(k) is not None}
        return data_lib.mnist(data_dir, d["image_size"], d.get("channels", 1), **source)
    if d["name"] == "digits":
        return digits_split(d["image_size"], d.get("test_size", 500), seed=0, channels=d.get("channels", 1))
    raise ValueError(f"unknown SGAN dataset {d['name']!r}: use 'mnist' or 'digits'")


def sgan_dataset(x_unlabelled, x_labelled, y_labelled, batch_size: int, labelled_batch_size: int | None = None,
                 seed: int = 0, repeat: bool = False):
    """``tf.data`` of ``(x_unlabelled, (x_labelled, y_labelled))`` batches in [-1, 1].

    The unlabelled images set the epoch; the (tiny) labelled set is repeated and reshuffled on
    every pass, so each step sees one batch of both.
    """
    unlabelled = data_lib.make_dataset(x_unlabelled, batch_size, seed=seed, repeat=repeat)
    labelled = data_lib.make_dataset(x_labelled, labelled_batch_size or batch_size, labels=y_labelled,
                                     seed=seed + 1, repeat=True, drop_remainder=False)
    return tf.data.Dataset.zip((unlabelled, labelled)).prefetch(tf.data.AUTOTUNE)


# -- networks -------------------------------------------------------------------------------------

class WeightNormDense(layers.Layer):
    """A dense layer with weight normalisation (Salimans & Kingma 2016): ``y = act(x @ W + b)`` with
    every column of ``W = g * v / ||v||``, so ``v`` sets a unit's direction and ``g`` its length.

    ``train_scale=False`` freezes ``g`` (the improved-gan code's ``nn.DenseLayer`` default, used for
    every hidden layer of its MNIST D; only its output layer trains the scale): D's hidden units then
    cannot grow, whatever the adversarial game asks. :meth:`initialize_from` sets ``g`` and ``b`` so
    that the pre-activations of a batch have zero mean and unit variance (their data-dependent init).
    """

    def __init__(self, units: int, activation=None, train_scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.train_scale = int(units), bool(train_scale)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        # improved-gan's nn.DenseLayer: theta ~ N(0, 0.1), scale 1, bias 0 (the scale of theta cancels)
        self.v = self.add_weight(name="v", shape=(int(input_shape[-1]), self.units),
                                 initializer=keras.initializers.RandomNormal(0.0, 0.1))
        self.g = self.add_weight(name="g", shape=(self.units,), initializer="ones", trainable=self.train_scale)
        self.b = self.add_weight(name="b", shape=(self.units,), initializer="zeros")

    def kernel(self):
        v = keras.ops.convert_to_tensor(self.v)
        return v * (self.g / keras.ops.sqrt(keras.ops.sum(keras.ops.square(v), axis=0) + 1e-6))

    def call(self, x):
        w = keras.ops.cast(self.kernel(), x.dtype)
        return self.activation(keras.ops.matmul(x, w) + keras.ops.cast(self.b, x.dtype))

    def initialize_from(self, x) -> None:
        """Data-dependent init on a batch ``x`` of this layer's inputs: ``g <- g / std``, ``b <- -mean / std``
        of ``x @ W`` per unit (the improved-gan code's ``init=True`` pass)."""
        pre = tf.matmul(tf.cast(x, tf.float32), tf.cast(self.kernel(), tf.float32))
        mean, var = tf.nn.moments(pre, axes=[0])
        std = tf.sqrt(var + 1e-8)
        self.g.assign(tf.cast(self.g / std, self.g.dtype))
        self.b.assign(tf.cast(-mean / std, self.b.dtype))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "train_scale": self.train_scale,
                "activation": keras.activations.serialize(self.activation)}


def initialize_weight_norm(model: keras.Model, x) -> int:
    """Data-dependent init of every :class:`WeightNormDense` in ``model``, in order, on the batch
    ``x`` (training mode: the Gaussian noise is on, as in the improved-gan code); each layer is
    initialised on the outputs of the layers already initialised. Returns how many were set."""
    x = tf.convert_to_tensor(x, tf.float32)
    done = 0
    for layer in model.layers:
        if isinstance(layer, WeightNormDense):
            inputs = keras.Model(model.input, layer.input)(x, training=True)
            layer.initialize_from(inputs)
            done += 1
    return done


def _as_float(images) -> np.ndarray:
    """uint8 [0, 255] -> float32 [-1, 1]; float images are taken to be in [-1, 1] already."""
    images = np.asarray(images)
    return data_lib.to_float(images).astype(np.float32) if images.dtype == np.uint8 else images.astype(np.float32)


class WeightNormInit(keras.callbacks.Callback):
    """At the start of a fresh run (step 0; a resumed run keeps its checkpoint), the data-dependent
    init of the discriminator's weight-normalised layers on the first ``n`` unlabelled images (the
    improved-gan code: ``init_param(trainx[:500])``)."""

    def __init__(self, images, n: int = 500):
        super().__init__()
        self.images = np.asarray(images[:n])

    def on_train_begin(self, logs=None):
        if int(self.model.step.numpy()) == 0:
            x = _as_float(self.images)
            n = initialize_weight_norm(self.model.discriminator, x)
            log.info("weight norm: data-dependent init of %d layers on %d images", n, len(x))


def classifier_body(input_shape, units=(256, 128, 64), input_noise: float = 0.6, hidden_noise: float = 0.5,
                    dropout: float = 0.0, body: str = "mlp", activation: str = "leaky_relu",
                    weight_norm: bool = False, name: str = "body") -> keras.Model:
    """Image ``input_shape`` in [-1, 1] -> features ``(N, units[-1])``, the layer feature matching uses.

    ``body="mlp"``: Salimans et al.'s MNIST discriminator, Dense layers with Gaussian noise on the
    input and after every hidden layer (active only in training). ``activation``: ``"leaky_relu"``
    (slope 0.2) or ``"relu"`` (the improved-gan code's). ``weight_norm=True``: the dense layers are
    :class:`WeightNormDense` with a frozen scale, as in their code (needs :func:`initialize_weight_norm`
    before training: :class:`WeightNormInit` does it). ``body="conv"``: 3x3 convolutions with
    ``units`` filters, stride 2 after the first, then global average pooling. No BatchNorm: D sees
    real, labelled and fake batches separately, and batch statistics would tell them apart.
    """
    if activation not in ("leaky_relu", "relu"):
        raise ValueError(f"activation must be 'leaky_relu' or 'relu', got {activation!r}")
    if weight_norm and body != "mlp":
        raise ValueError("weight_norm=True is implemented for body='mlp' only")
    img = keras.Input(tuple(input_shape), name="image")
    x = GaussianNoise(input_noise, name="input_noise")(img) if input_noise else img
    if body == "mlp":
        x = layers.Flatten()(x)
    elif body != "conv":
        raise ValueError(f"body must be 'mlp' or 'conv', got {body!r}")
    for i, u in enumerate(units):
        if weight_norm:
            x = WeightNormDense(u, train_scale=False, name=f"dense{i}")(x)
        elif body == "mlp":
            x = layers.Dense(u, name=f"dense{i}")(x)
        else:
            x = layers.Conv2D(u, 3, strides=1 if i == 0 else 2, padding="same", name=f"conv{i}")(x)
        x = (layers.LeakyReLU(0.2, name=f"act{i}") if activation == "leaky_relu"
             else layers.ReLU(name=f"act{i}"))(x)
        if hidden_noise and i < len(units) - 1:
            x = GaussianNoise(hidden_noise, name=f"noise{i}")(x)
        if dropout and i < len(units) - 1:
            x = Dropout(dropout, name=f"dropout{i}")(x)
    if body == "conv":
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    features = layers.Activation("linear", dtype="float32", name="features")(x)
    return keras.Model(img, features, name=name)


def build_discriminator(input_shape, num_classes: int = 10, formulation: str = "k_plus_one",
                        **body_kwargs) -> keras.Model:
    """Body + heads: image -> ``{"class_logits": (N, K), "features": (N, F)}`` and, for
    ``formulation="two_head"``, ``"real_logit": (N, 1)``. Heads are float32 (mixed precision)."""
    if formulation not in FORMULATIONS:
        raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    body = classifier_body(input_shape, **body_kwargs)
    features = body.output
    h = GaussianNoise(body_kwargs.get("hidden_noise", 0.5), name="head_noise")(features)
    # improved-gan: the output layer is weight-normalised too, with a trainable scale (train_scale=True)
    head = (lambda n, name: WeightNormDense(n, train_scale=True, dtype="float32", name=name)) \
        if body_kwargs.get("weight_norm") else (lambda n, name: layers.Dense(n, dtype="float32", name=name))
    outputs = {"class_logits": head(num_classes, "class_logits")(h), "features": features}
    if formulation == "two_head":
        outputs["real_logit"] = head(1, "real_logit")(h)
    return keras.Model(body.input, outputs, name="discriminator")


def build_classifier(input_shape, num_classes: int = 10, **body_kwargs) -> keras.Model:
    """The supervised-only baseline: the same body and class head, image -> ``(N, K)`` logits."""
    d = build_discriminator(input_shape, num_classes, "k_plus_one", **body_kwargs)
    return keras.Model(d.input, d.output["class_logits"], name="classifier")


def mlp_generator(latent_dim: int, image_shape, units=(500, 500), weight_norm: bool = False,
                  name: str = "generator") -> keras.Model:
    """Salimans et al.'s MNIST generator: noise (latent_dim,) -> Dense+BatchNorm+softplus layers ->
    a tanh image of ``image_shape`` in [-1, 1] (float32 output). ``weight_norm=True``: the last
    layer is weight-normalised with a trainable scale (improved-gan's ``nn.l2normalize``)."""
    z = keras.Input((latent_dim,), name="noise")
    x = z
    for i, u in enumerate(units):
        x = layers.Dense(u, use_bias=False, name=f"dense{i}")(x)
        x = layers.BatchNormalization(synchronized=several_replicas(), name=f"bn{i}")(x)
        x = layers.Activation("softplus", name=f"act{i}")(x)
    x = (WeightNormDense(int(np.prod(image_shape)), train_scale=True, name="to_image") if weight_norm
         else layers.Dense(int(np.prod(image_shape)), name="to_image"))(x)
    x = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z, layers.Reshape(tuple(image_shape), dtype="float32", name="image")(x), name=name)


# -- the logit trick and the losses ---------------------------------------------------------------

def k_plus_one_logits(class_logits):
    """(N, K) class logits -> (N, K+1) logits with the fake class's logit identically 0."""
    class_logits = tf.cast(class_logits, tf.float32)
    return tf.concat([class_logits, tf.zeros_like(class_logits[:, :1])], axis=1)


def real_probability(class_logits):
    """D(x) = Z / (Z + 1) with Z = sum_k exp(l_k), computed as sigmoid(logsumexp(l)) (stable)."""
    return tf.sigmoid(tf.reduce_logsumexp(tf.cast(class_logits, tf.float32), axis=1))


def unsupervised_loss_k_plus_one(logits_real, logits_fake):
    """-E_real[log Z/(Z+1)] - E_fake[log 1/(Z+1)], written with logsumexp and softplus."""
    lse_real = tf.reduce_logsumexp(tf.cast(logits_real, tf.float32), axis=1)
    lse_fake = tf.reduce_logsumexp(tf.cast(logits_fake, tf.float32), axis=1)
    return -tf.reduce_mean(lse_real - tf.nn.softplus(lse_real)) + tf.reduce_mean(tf.nn.softplus(lse_fake))


def supervised_loss(labels, class_logits):
    """Cross-entropy of integer labels over the K class logits (the fake class has p = 0 for them)."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(class_logits, tf.float32)))


def feature_matching_loss(features_real, features_fake):
    """|| E f(x) - E f(G(z)) ||^2 over the batch, averaged over features (Salimans et al. eq. 3.1). Under
    several replicas the expectations are the global batch's (``distribute.global_batch_mean``): the
    distance of two means is not the mean of the replicas' distances."""
    diff = (global_batch_mean(tf.cast(features_real, tf.float32))
            - global_batch_mean(tf.cast(features_fake, tf.float32)))
    return tf.reduce_mean(tf.square(diff))


def _bce(logits, target: float):
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), target),
                                                                  logits=logits))


# -- the model ------------------------------------------------------------------------------------

class SGAN(GAN):
    """Semi-supervised GAN whose discriminator is the classifier.

    Each ``train_step`` gets ``(x_unlabelled, (x_labelled, y_labelled))`` (see :func:`sgan_dataset`):
      1. D: ``L_sup`` on the labelled batch + ``unsup_weight * L_unsup`` on the unlabelled batch and
         as many fakes (K+1 logit trick, or the two-head sigmoid unit);
      2. G: feature matching on D's last hidden layer, or the standard non-saturating loss.
    ``self.classifier`` maps images to the K class logits (for evaluation and predictions).

    ``average_decay`` (e.g. 0.999) also keeps an exponential moving average of D's weights after every
    step, as the improved-gan code does for its test error (``disc_param_avg``, rate 1e-4 from zero);
    here it is debiased like Adam's moments, so it is usable after a few hundred steps at any decay.
    :meth:`averaged_weights` gives it, :meth:`use_averaged_weights` swaps it in for an evaluation.
    """

    metric_names = ("d_loss_sup", "d_loss_unsup", "g_loss", "train_accuracy", "d_real", "d_fake")
    metric_groups = {"d_real": "discriminator/d_real", "d_fake": "discriminator/d_fake"}

    def __init__(self, generator, discriminator, formulation: str = "k_plus_one",
                 generator_loss: str = "feature_matching", unsup_weight: float = 1.0,
                 average_decay: float | None = None, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if average_decay is not None and not 0.0 < average_decay < 1.0:
            raise ValueError(f"average_decay must lie in (0, 1) or be None, got {average_decay}")
        self.average_decay = average_decay
        self.d_average = tf.Module(name="d_average")  # a tf.Module: checkpointed, not a Keras layer
        if average_decay is not None:
            self.d_average.weights = [tf.Variable(tf.zeros_like(w), trainable=False, name=f"avg_{i}")
                                      for i, w in enumerate(discriminator.weights)]
            self.d_average.count = tf.Variable(0.0, trainable=False, name="avg_count")
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}")
        if formulation == "two_head" and "real_logit" not in discriminator.output:
            raise ValueError("formulation='two_head' needs a discriminator with a 'real_logit' output; "
                             "build it with build_discriminator(..., formulation='two_head')")
        self.formulation, self.generator_loss, self.unsup_weight = formulation, generator_loss, unsup_weight
        self.classifier = keras.Model(discriminator.input, discriminator.output["class_logits"], name="classifier")

    def checkpoint_items(self) -> dict:
        items = super().checkpoint_items()
        return dict(items, d_average=self.d_average) if self.average_decay is not None else items

    def averaged_weights(self) -> list[np.ndarray]:
        """The debiased moving average of D's weights (``average / (1 - decay^steps)``), in the order
        of ``discriminator.weights``; D's current weights before the first step."""
        n = float(self.d_average.count.numpy()) if self.average_decay is not None else 0.0
        if n == 0:
            return [keras.ops.convert_to_numpy(w) for w in self.discriminator.weights]
        debias = 1.0 - self.average_decay ** n
        return [a.numpy() / debias for a in self.d_average.weights]

    def use_averaged_weights(self):
        """Context manager: D (and so ``classifier``) holds the averaged weights inside, its own after."""
        import contextlib

        @contextlib.contextmanager
        def swapped():
            own = [keras.ops.convert_to_numpy(w) for w in self.discriminator.weights]
            for w, a in zip(self.discriminator.weights, self.averaged_weights(), strict=True):
                w.assign(a)
            try:
                yield self.classifier
            finally:
                for w, o in zip(self.discriminator.weights, own, strict=True):
                    w.assign(o)

        return swapped()

    def real_logit(self, out):
        """The real/fake logit: logsumexp of the class logits (K+1) or the sigmoid unit (two heads)."""
        if self.formulation == "k_plus_one":
            return tf.reduce_logsumexp(out["class_logits"], axis=1)
        return out["real_logit"][:, 0]

    def _d_on(self, *batches):
        """D on several batches in one call (D has no BatchNorm, so this equals separate calls, only
        faster); returns one output dict per batch. Under several replicas (or ``global_draws``) one
        call per batch: D's noise layers then draw each batch's noise for the global batch, the rows
        one device draws for it (a concatenation would pair the replicas' rows with other noise)."""
        if self.draw_share() is not None:
            return [self.discriminator(b, training=True) for b in batches]
        out = self.discriminator(tf.concat(batches, axis=0), training=True)
        sizes = [tf.shape(b)[0] for b in batches]
        starts = tf.math.cumsum([0] + sizes)
        return [{k: v[starts[i]:starts[i + 1]] for k, v in out.items()} for i in range(len(batches))]

    def train_step(self, data):
        x_unl, (x_lab, y_lab) = data
        n = tf.shape(x_unl)[0]
        d_vars, g_vars = self.discriminator.trainable_variables, self.generator.trainable_variables

        # 1. Discriminator: supervised on the labels + unsupervised real-vs-fake.
        fake = self.generator(self.sample_noise(n), training=True)
        with tf.GradientTape() as tape:
            out_lab, out_unl, out_fake = self._d_on(x_lab, x_unl, fake)
            d_loss_sup = supervised_loss(y_lab, out_lab["class_logits"])
            if self.formulation == "k_plus_one":
                d_loss_unsup = unsupervised_loss_k_plus_one(out_unl["class_logits"], out_fake["class_logits"])
            else:
                d_loss_unsup = _bce(self.real_logit(out_unl), 1.0) + _bce(self.real_logit(out_fake), 0.0)
            d_loss = d_loss_sup + self.unsup_weight * d_loss_unsup
        self._apply(self.d_optimizer, tape, d_loss, d_vars)
        if self.average_decay is not None:  # the moving average of D's weights (evaluation only)
            for a, w in zip(self.d_average.weights, self.discriminator.weights, strict=True):
                a.assign(self.average_decay * a + (1.0 - self.average_decay) * tf.cast(w, a.dtype))
            self.d_average.count.assign_add(1.0)

        # 2. Generator: match the updated D's mean features of real images, or fool D (non-saturating).
        with tf.GradientTape() as tape:
            out_real, out_gen = self._d_on(x_unl, self.generator(self.sample_noise(n), training=True))
            if self.generator_loss == "feature_matching":
                g_loss = feature_matching_loss(tf.stop_gradient(out_real["features"]), out_gen["features"])
            else:
                g_loss = tf.reduce_mean(tf.nn.softplus(-self.real_logit(out_gen)))  # -log D(G(z))
        self._apply(self.g_optimizer, tape, g_loss, g_vars)

        self.step.assign_add(1)
        predicted = tf.argmax(out_lab["class_logits"], axis=1, output_type=tf.int32)
        return self._report(
            d_loss_sup=d_loss_sup, d_loss_unsup=d_loss_unsup, g_loss=g_loss,
            train_accuracy=tf.reduce_mean(tf.cast(predicted == tf.cast(y_lab, tf.int32), tf.float32)),
            d_real=tf.reduce_mean(tf.sigmoid(self.real_logit(out_unl))),
            d_fake=tf.reduce_mean(tf.sigmoid(self.real_logit(out_fake))))


def _image_shape(config):
    d = config["data"]
    return (d["image_size"], d["image_size"], d.get("channels", 1))


def _body_kwargs(config):
    """The discriminator section minus what is not a network argument (``init_images``: the run's)."""
    return {k: v for k, v in config["discriminator"].items() if k != "init_images"}


def build_sgan(config: dict, num_classes: int = 10) -> SGAN:
    """Generator, discriminator and SGAN from a config (see :func:`sgan_config`), compiled."""
    from .precision import policy_for, policy_scope, wrap_optimizer

    shape, s, t = _image_shape(config), config["sgan"], config["training"]
    g = config["generator"]
    policy = policy_for(t.get("precision", "float32"))
    with policy_scope(policy):  # heads, features and images stay float32 under mixed precision
        generator = mlp_generator(g["latent_dim"], shape, g.get("units", (500, 500)), g.get("weight_norm", False))
        discriminator = build_discriminator(shape, num_classes, s["formulation"], **_body_kwargs(config))
    model = SGAN(generator, discriminator, formulation=s["formulation"], generator_loss=s["generator_loss"],
                 unsup_weight=s.get("unsup_weight", 1.0), average_decay=s.get("average_decay"),
                 seed=config.get("seed", 0))
    eps = t.get("adam_epsilon", 1e-7)  # Keras' default unless the config says
    model.compile(d_optimizer=wrap_optimizer(keras.optimizers.Adam(t["d_lr"], beta_1=t["beta_1"], epsilon=eps), policy),
                  g_optimizer=wrap_optimizer(keras.optimizers.Adam(t["g_lr"], beta_1=t["beta_1"], epsilon=eps), policy),
                  jit_compile=t.get("jit_compile", False))
    return model


def accuracy(classifier: keras.Model, x, y, batch_size: int = 500) -> float:
    """Fraction of ``x`` (uint8 or [-1, 1] floats) whose argmax class logit equals ``y``."""
    return float(np.mean(predict_classes(classifier, x, batch_size) == np.asarray(y)))


def predict_classes(classifier: keras.Model, x, batch_size: int = 500) -> np.ndarray:
    """Argmax class of every image (uint8 or [-1, 1] floats), in batches, in inference mode."""
    x = np.asarray(x)
    out = []
    for i in range(0, len(x), batch_size):
        chunk = data_lib.to_float(x[i:i + batch_size]) if x.dtype == np.uint8 else x[i:i + batch_size]
        logits = classifier(tf.convert_to_tensor(chunk, tf.float32), training=False)
        out.append(np.argmax(keras.ops.convert_to_numpy(logits), axis=1))
    return np.concatenate(out)


class TestAccuracy(keras.callbacks.Callback):
    """At every epoch end: the classifier's accuracy on the evaluation split, as ``<split>_accuracy``
    in the epoch logs, as the TensorBoard scalar ``metrics/<split>_accuracy`` (at the model's
    step, like every tag) and in ``results.json`` (``<split>_accuracy_per_epoch``, kept across resumes).
    ``split`` is ``"test"``, or ``"validation"`` while settings are being chosen."""

    def __init__(self, x_test, y_test, run: Run | None = None, classifier_attr: str = "classifier",
                 split: str = "test"):
        super().__init__()
        self.x_test, self.y_test, self.run, self.classifier_attr = x_test, y_test, run, classifier_attr
        self.key = f"{split}_accuracy"

    def on_epoch_end(self, epoch, logs=None):
        values = {self.key: accuracy(getattr(self.model, self.classifier_attr, self.model), self.x_test, self.y_test)}
        if getattr(self.model, "average_decay", None) is not None:  # and with D's averaged weights
            with self.model.use_averaged_weights() as averaged:
                values[f"{self.key}_averaged"] = accuracy(averaged, self.x_test, self.y_test)
        if logs is not None:
            logs.update(values)
        if self.run is not None:
            summaries.scalars(self.run, {f"metrics/{k}": v for k, v in values.items()}, int(self.model.step.numpy()))
            results = self.run.results()
            self.run.update_results({f"{k}_per_epoch": results.get(f"{k}_per_epoch", [])[:epoch] + [v]
                                     for k, v in values.items()})


# -- experiments ----------------------------------------------------------------------------------

def train_baseline(config: dict, x_labelled, y_labelled, seed: int | None = None, num_classes: int = 10,
                   steps_per_epoch: int | None = None) -> keras.Model:
    """The supervised-only baseline: :func:`build_classifier` (same body and head as the SGAN's D) on
    the same labelled images for ``baseline.epochs`` epochs of ``steps_per_epoch`` labelled batches
    (``run_experiment`` passes the SGAN's, so both see the labels equally often); the same noise
    regularisation, no early stopping, no test data seen."""
    b, d = config["baseline"], config["data"]
    seed = config.get("seed", 0) if seed is None else seed
    seed_everything(seed)
    from .precision import policy_for, policy_scope, wrap_optimizer

    policy = policy_for(config["training"].get("precision", "float32"))
    with policy_scope(policy):  # the same precision as the SGAN it is compared with
        model = build_classifier(_image_shape(config), num_classes, **_body_kwargs(config))
    model.compile(optimizer=wrap_optimizer(keras.optimizers.Adam(b["lr"], beta_1=config["training"]["beta_1"]),
                                           policy),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                  jit_compile=config["training"].get("jit_compile", False))
    if config["discriminator"].get("weight_norm"):  # the same data-dependent init, on its labelled images
        initialize_weight_norm(model, _as_float(x_labelled[:500]))
    ds = data_lib.make_dataset(x_labelled, d.get("labelled_batch_size", d["batch_size"]), labels=y_labelled,
                               seed=seed, repeat=True, drop_remainder=False)
    steps_per_epoch = steps_per_epoch or b.get("steps_per_epoch") or max(1, len(x_labelled) // d["batch_size"])
    model.fit(ds, epochs=b["epochs"], steps_per_epoch=steps_per_epoch, verbose=0, shuffle=False)
    return model


# -- the run loop's view of SGAN -------------------------------------------------------------------

def evaluation_split(config: dict) -> str:
    """``"validation"`` when ``data.validation`` carves a validation split from the training set
    (choosing settings), else ``"test"`` (reporting, once the settings are chosen)."""
    return "validation" if config["data"].get("validation") else "test"


def split_validation(raw: dict, n: int) -> dict:
    """The last ``n`` training images become the evaluation split (``x_test``, ``y_test``); the test
    set is set aside untouched. Labels and unlabelled images then come from the rest only."""
    n = int(n)
    if not 0 < n < len(raw["x_train"]):
        raise ValueError(f"data.validation={n} must lie between 1 and the {len(raw['x_train'])} training images - 1")
    return {"x_train": raw["x_train"][:-n], "y_train": raw["y_train"][:-n],
            "x_test": raw["x_train"][-n:], "y_test": raw["y_train"][-n:]}


def prepare_data(config: dict, raw: dict | None = None, data_dir=None) -> dict:
    """The arrays one SGAN run needs: the train/test split (``raw``, default :func:`load_data`)
    and the seeded labelled subset of the config's ``labels``: ``x_labelled``, ``y_labelled``,
    ``x_unlabelled`` (also as ``images``), ``x_test``, ``y_test``, ``labelled`` (indices).
    With ``data.validation: n`` the last n training images replace the test set as ``x_test``/``y_test``
    (see :func:`split_validation`), so the test set is not seen while settings are chosen."""
    raw = raw or load_data(config, data_dir)
    if config["data"].get("validation"):
        raw = split_validation(raw, config["data"]["validation"])
    lab = config["labels"]
    labelled, unlabelled = select_labelled(raw["y_train"], lab.get("per_class"), seed=config.get("seed", 0),
                                           disjoint=lab.get("disjoint", True), fraction=lab.get("fraction"))
    x_unl = raw["x_train"][unlabelled]
    return {"x_labelled": raw["x_train"][labelled], "y_labelled": raw["y_train"][labelled], "x_unlabelled": x_unl,
            "images": x_unl, "x_test": raw["x_test"], "y_test": raw["y_test"], "labelled": labelled,
            "num_classes": int(np.max(raw["y_train"])) + 1}


def _dataset(config: dict, data: dict):
    d = config["data"]
    return sgan_dataset(data["x_unlabelled"], data["x_labelled"], data["y_labelled"], d["batch_size"],
                        d.get("labelled_batch_size"), config.get("seed", 0), repeat=True)


def _steps_per_pass(config: dict, data: dict) -> int:
    """Steps of one epoch: ``training.steps_per_epoch`` if set, else one pass over the unlabelled set."""
    per_pass = max(1, len(data["x_unlabelled"]) // config["data"]["batch_size"])
    return config["training"].get("steps_per_epoch") or per_pass


def _finish(run, config: dict, model, data) -> dict:
    """The baseline on the same labels (as many labelled batches per epoch as the SGAN saw) and
    both test accuracies."""
    baseline = train_baseline(config, data["x_labelled"], data["y_labelled"], config.get("seed", 0),
                              data["num_classes"], _steps_per_pass(config, data))
    model.__dict__["baseline"] = baseline  # for the notebook's plots; untracked: not in the checkpoint
    split = evaluation_split(config)
    figures = {f"sgan_{split}_accuracy_own_weights": accuracy(model.classifier, data["x_test"], data["y_test"])}
    if model.average_decay is not None:
        with model.use_averaged_weights() as averaged:
            figures[f"sgan_{split}_accuracy_averaged"] = accuracy(averaged, data["x_test"], data["y_test"])
    # the reported figure: D's averaged weights if the config says so (chosen on validation), else its own
    use_average = config["sgan"].get("evaluate_average", False) and model.average_decay is not None
    return {
        **figures,
        f"sgan_{split}_accuracy": figures[f"sgan_{split}_accuracy_{'averaged' if use_average else 'own_weights'}"],
        f"baseline_{split}_accuracy": accuracy(baseline, data["x_test"], data["y_test"]), "evaluated_on": split,
        "num_labels": int(len(data["labelled"])), "num_unlabelled": int(len(data["x_unlabelled"])),
        "seed": int(config.get("seed", 0)), "dataset": config["data"]["name"],
        "formulation": config["sgan"]["formulation"], "generator_loss": config["sgan"]["generator_loss"],
    }


def _callbacks(run, config, model, data):
    """The per-epoch accuracy (unless ``sgan.evaluate_each_epoch`` is False: a measurement that looks
    at the test set once, at the end) and the weight norm's data-dependent init."""
    own = [TestAccuracy(data["x_test"], data["y_test"], run, split=evaluation_split(config))] \
        if config["sgan"].get("evaluate_each_epoch", True) else []
    if config["discriminator"].get("weight_norm"):
        own.insert(0, WeightNormInit(data["x_unlabelled"], config["discriminator"].get("init_images", 500)))
    return own


def _kind():
    from .run import ModelKind

    return ModelKind(
        name="sgan", presets=SGAN_PRESETS,
        build=lambda config: build_sgan(config, config.get("num_classes", 10)),
        load_data=lambda config, data_dir=None, download=True: prepare_data(config, data_dir=data_dir),
        dataset=_dataset, steps_per_pass=_steps_per_pass,
        total_steps=lambda config, data: config["training"]["epochs"] * _steps_per_pass(config, data),
        callbacks=_callbacks,
        finish=_finish, description="semi-supervised GAN (Salimans et al. 2016), K+1 classes")


KIND = _kind()


def run_experiment(config: dict, data: dict | None = None, root=None, run_name: str = "default",
                   data_dir=None, verbose: int | str = 0, steps_per_epoch: int | None = None, **kwargs) -> dict:
    """Train the SGAN and its baseline on the same labels through :func:`ganhelpers.run.train`;
    returns the results (``sgan_test_accuracy``, ``baseline_test_accuracy``, ...) with the model,
    the baseline, the run and :func:`~ganhelpers.run.train`'s result under ``"model"``, ``"baseline"``,
    ``"run"``, ``"run_result"`` (not in the file).
    ``data``: the train/test split (default :func:`load_data`); ``steps_per_epoch`` shortens the
    epochs (``training.steps_per_epoch``)."""
    from .run import train

    if steps_per_epoch is not None:
        config = dict(config, training={**config["training"], "steps_per_epoch": int(steps_per_epoch)})
    prepared = prepare_data(config, data, data_dir)
    result = train(dict(config, model="sgan"), run_name, root=root, data=prepared, verbose=verbose, **kwargs)
    return {**result.results, "model": result.model, "baseline": result.model.baseline, "run": result.run,
            "run_result": result}


def run_seeds(config: dict, seeds=(0, 1, 2), data: dict | None = None, root=None, run_name: str = "seeds",
              **kwargs) -> dict:
    """:func:`run_experiment` once per seed (runs ``<run_name>_seed<k>``); the per-seed and mean
    accuracies go to ``<experiment>/<run_name>/results.json`` and are returned."""
    split = evaluation_split(config)
    keys = (f"sgan_{split}_accuracy", f"baseline_{split}_accuracy")
    per_seed = []
    for s in seeds:
        r = run_experiment(dict(config, seed=int(s)), data=data, root=root, run_name=f"{run_name}_seed{s}", **kwargs)
        per_seed.append({k: r[k] for k in (*keys, "num_labels", "seed", "train_seconds")})
    summary = {"seeds": [int(s) for s in seeds], "num_labels": per_seed[0]["num_labels"], "evaluated_on": split,
               "train_seconds": [r["train_seconds"] for r in per_seed]}
    for k in keys:
        summary[k] = [r[k] for r in per_seed]
        summary[f"{k}_mean"] = float(np.mean(summary[k]))
        summary[f"{k}_std"] = float(np.std(summary[k], ddof=1)) if len(seeds) > 1 else 0.0  # sample std
    # the summary run is held only while it is written: processes training other seeds of the same
    # run_name (one per core) write in turn instead of failing with RunLocked. Each writes the summary of
    # the seeds it trained (the last one wins); benchmarks/sgan_mnist.py --collect builds the table of
    # all seeds from their runs.
    summary_run = open_run(config["experiment"], run_name, config, root=root, lock=False)
    with summary_run.lock(wait=600):
        summary_run.update_results(summary)
    return summary


def label_sweep(config: dict, per_class_values, data: dict | None = None, root=None, run_prefix: str = "sweep",
                epochs: int | None = None, main: dict | None = None, **kwargs) -> list[dict]:
    """Test accuracy of SGAN and baseline against the number of labels (one run per value of
    ``labels.per_class``; None = every training label). Returns one row per value, with the epochs
    it trained and its run's name.

    ``main``: the :func:`run_experiment` result of ``config`` itself. At its labels (``per_class`` of
    ``config``) the row is that run's, not a new shorter one, so the sweep and the main run report
    one figure there (a second run differs: its budget, its baseline's epochs, CPU non-determinism)."""
    rows = []
    for n in per_class_values:
        cfg = sgan_config_like(config, labels={"per_class": n}, epochs=epochs)
        split = evaluation_split(cfg)
        reuse = main is not None and n == config["labels"].get("per_class") and not config["labels"].get("fraction")
        r = main if reuse else run_experiment(cfg, data=data, root=root,
                                              run_name=f"{run_prefix}_{'all' if n is None else n}", **kwargs)
        rows.append({**{k: r[k] for k in ("num_labels", f"sgan_{split}_accuracy", f"baseline_{split}_accuracy",
                                          "train_seconds")},
                     "epochs": int(r["epoch"]), "run": r["run"].name, "main_run": bool(reuse)})
    return rows


def sgan_config_like(config: dict, labels: dict | None = None, epochs: int | None = None) -> dict:
    """A copy of ``config`` with some label settings and (SGAN and baseline) epochs replaced."""
    cfg = copy.deepcopy(config)
    if labels:
        cfg["labels"].update(labels)
    if epochs is not None:
        cfg["training"]["epochs"] = epochs
        cfg["baseline"]["epochs"] = epochs
    return cfg


__all__ = ["SGAN", "sgan_config", "select_labelled", "digits_split", "load_data", "sgan_dataset",
           "classifier_body", "build_discriminator", "build_classifier", "mlp_generator", "k_plus_one_logits",
           "real_probability", "unsupervised_loss_k_plus_one", "supervised_loss", "feature_matching_loss",
           "build_sgan", "accuracy", "predict_classes", "TestAccuracy", "train_baseline", "run_experiment",
           "run_seeds", "label_sweep"]
