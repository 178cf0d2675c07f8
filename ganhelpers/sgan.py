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
from .experiment import Run, open_run, seed_everything
from .models import GAN

log = logging.getLogger(__name__)

FORMULATIONS = ("k_plus_one", "two_head")
GENERATOR_LOSSES = ("feature_matching", "standard")

SGAN_PRESETS: dict[str, dict] = {
    # MNIST with 100 labels as in Salimans et al. 2016 (section 5.1 and their train_mnist_feature_
    # matching.py): batch 100 labelled + 100 unlabelled, Adam(3e-3, beta_1 0.5), 300 epochs; D an MLP
    # 1000-500-250-250-250 with Gaussian noise (std 0.3 on the input, 0.5 on hidden layers, for inputs
    # in [0, 1]: doubled here because our images are in [-1, 1]); G an MLP 500-500 softplus with
    # BatchNorm. They also weight-normalise every layer; we do not (plain Dense), hence the lower
    # lr 1e-3 (a guess that has not been run on MNIST here: no GPU, no download in development).
    "full": {
        "experiment": "sgan_mnist",
        "seed": 0,
        "data": {"name": "mnist", "image_size": 28, "channels": 1, "batch_size": 100, "labelled_batch_size": 100},
        "labels": {"per_class": 10, "disjoint": True},
        "generator": {"latent_dim": 100, "units": [500, 500]},
        "discriminator": {"body": "mlp", "units": [1000, 500, 250, 250, 250], "input_noise": 0.6,
                          "hidden_noise": 0.5, "dropout": 0.0},
        "sgan": {"formulation": "k_plus_one", "generator_loss": "feature_matching", "unsup_weight": 1.0},
        "training": {"epochs": 300, "d_lr": 1e-3, "g_lr": 1e-3, "beta_1": 0.5, "snapshot_every": 600,
                     "checkpoint_every_steps": None, "checkpoint_every_epochs": 5, "keep_checkpoints": 3},
        # 50 x 600 steps on 100 labels: far past the baseline's convergence.
        "baseline": {"epochs": 50, "lr": 1e-3},
        # The notebook's accuracy-vs-labels sweep: labels per class (None = every label), shorter runs.
        "sweep": {"per_class": [2, 5, 10, 100, None], "epochs": 50},
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
# The workshop preset: the offline digits recipe as it is (about half a minute per run on 2 cores).
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
    """Train/test arrays for a config's ``data`` section: ``mnist`` (downloads) or ``digits`` (offline)."""
    d = config["data"]
    if d["name"] == "mnist":
        source = {k: d[k] for k in ("url", "md5") if k in d}  # a mirror, or a test's file:// URL
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

def classifier_body(input_shape, units=(256, 128, 64), input_noise: float = 0.6, hidden_noise: float = 0.5,
                    dropout: float = 0.0, body: str = "mlp", name: str = "body") -> keras.Model:
    """Image ``input_shape`` in [-1, 1] -> features ``(N, units[-1])``, the layer feature matching uses.

    ``body="mlp"``: Salimans et al.'s MNIST discriminator, Dense + LeakyReLU(0.2) layers with
    Gaussian noise before each (active only in training). ``body="conv"``: 3x3 convolutions with
    ``units`` filters, stride 2 after the first, then global average pooling. No BatchNorm: D sees
    real, labelled and fake batches separately, and batch statistics would tell them apart.
    """
    img = keras.Input(tuple(input_shape), name="image")
    x = layers.GaussianNoise(input_noise, name="input_noise")(img) if input_noise else img
    if body == "mlp":
        x = layers.Flatten()(x)
    elif body != "conv":
        raise ValueError(f"body must be 'mlp' or 'conv', got {body!r}")
    for i, u in enumerate(units):
        if body == "mlp":
            x = layers.Dense(u, name=f"dense{i}")(x)
        else:
            x = layers.Conv2D(u, 3, strides=1 if i == 0 else 2, padding="same", name=f"conv{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i}")(x)
        if hidden_noise and i < len(units) - 1:
            x = layers.GaussianNoise(hidden_noise, name=f"noise{i}")(x)
        if dropout and i < len(units) - 1:
            x = layers.Dropout(dropout, name=f"dropout{i}")(x)
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
    h = layers.GaussianNoise(body_kwargs.get("hidden_noise", 0.5), name="head_noise")(features)
    outputs = {"class_logits": layers.Dense(num_classes, dtype="float32", name="class_logits")(h),
               "features": features}
    if formulation == "two_head":
        outputs["real_logit"] = layers.Dense(1, dtype="float32", name="real_logit")(h)
    return keras.Model(body.input, outputs, name="discriminator")


def build_classifier(input_shape, num_classes: int = 10, **body_kwargs) -> keras.Model:
    """The supervised-only baseline: the same body and class head, image -> ``(N, K)`` logits."""
    d = build_discriminator(input_shape, num_classes, "k_plus_one", **body_kwargs)
    return keras.Model(d.input, d.output["class_logits"], name="classifier")


def mlp_generator(latent_dim: int, image_shape, units=(500, 500), name: str = "generator") -> keras.Model:
    """Salimans et al.'s MNIST generator: noise (latent_dim,) -> Dense+BatchNorm+softplus layers ->
    a tanh image of ``image_shape`` in [-1, 1] (float32 output)."""
    z = keras.Input((latent_dim,), name="noise")
    x = z
    for i, u in enumerate(units):
        x = layers.Dense(u, use_bias=False, name=f"dense{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.Activation("softplus", name=f"act{i}")(x)
    x = layers.Dense(int(np.prod(image_shape)), name="to_image")(x)
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
    """|| E f(x) - E f(G(z)) ||^2 over the batch, averaged over features (Salimans et al. eq. 3.1)."""
    diff = tf.reduce_mean(tf.cast(features_real, tf.float32), 0) - tf.reduce_mean(tf.cast(features_fake, tf.float32), 0)
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
    """

    metric_names = ("d_loss_sup", "d_loss_unsup", "g_loss", "train_accuracy", "d_real", "d_fake")
    metric_groups = {"d_real": "discriminator/d_real", "d_fake": "discriminator/d_fake"}

    def __init__(self, generator, discriminator, formulation: str = "k_plus_one",
                 generator_loss: str = "feature_matching", unsup_weight: float = 1.0, **kwargs):
        super().__init__(generator, discriminator, **kwargs)
        if formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
        if generator_loss not in GENERATOR_LOSSES:
            raise ValueError(f"generator_loss must be one of {GENERATOR_LOSSES}, got {generator_loss!r}")
        if formulation == "two_head" and "real_logit" not in discriminator.output:
            raise ValueError("formulation='two_head' needs a discriminator with a 'real_logit' output; "
                             "build it with build_discriminator(..., formulation='two_head')")
        self.formulation, self.generator_loss, self.unsup_weight = formulation, generator_loss, unsup_weight
        self.classifier = keras.Model(discriminator.input, discriminator.output["class_logits"], name="classifier")

    def real_logit(self, out):
        """The real/fake logit: logsumexp of the class logits (K+1) or the sigmoid unit (two heads)."""
        if self.formulation == "k_plus_one":
            return tf.reduce_logsumexp(out["class_logits"], axis=1)
        return out["real_logit"][:, 0]

    def _d_on(self, *batches):
        """D on several batches in one call (D has no BatchNorm, so this equals separate calls, only
        faster); returns one output dict per batch."""
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
    return {k: v for k, v in config["discriminator"].items()}


def build_sgan(config: dict, num_classes: int = 10) -> SGAN:
    """Generator, discriminator and SGAN from a config (see :func:`sgan_config`), compiled."""
    from .precision import policy_for, policy_scope, wrap_optimizer

    shape, s, t = _image_shape(config), config["sgan"], config["training"]
    g = config["generator"]
    policy = policy_for(t.get("precision", "float32"))
    with policy_scope(policy):  # heads, features and images stay float32 under mixed precision
        generator = mlp_generator(g["latent_dim"], shape, g.get("units", (500, 500)))
        discriminator = build_discriminator(shape, num_classes, s["formulation"], **_body_kwargs(config))
    model = SGAN(generator, discriminator, formulation=s["formulation"], generator_loss=s["generator_loss"],
                 unsup_weight=s.get("unsup_weight", 1.0), seed=config.get("seed", 0))
    model.compile(d_optimizer=wrap_optimizer(keras.optimizers.Adam(t["d_lr"], beta_1=t["beta_1"]), policy),
                  g_optimizer=wrap_optimizer(keras.optimizers.Adam(t["g_lr"], beta_1=t["beta_1"]), policy),
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
    """At every epoch end: the classifier's accuracy on the test split, as ``test_accuracy`` in the
    epoch logs, as the TensorBoard scalar ``metrics/test_accuracy`` (at the model's step, like every tag) and
    in ``results.json`` (``test_accuracy_per_epoch``, kept across resumes)."""

    def __init__(self, x_test, y_test, run: Run | None = None, classifier_attr: str = "classifier"):
        super().__init__()
        self.x_test, self.y_test, self.run, self.classifier_attr = x_test, y_test, run, classifier_attr

    def on_epoch_end(self, epoch, logs=None):
        acc = accuracy(getattr(self.model, self.classifier_attr, self.model), self.x_test, self.y_test)
        if logs is not None:
            logs["test_accuracy"] = acc
        if self.run is not None:
            summaries.scalars(self.run, {"metrics/test_accuracy": acc}, int(self.model.step.numpy()))
            history = self.run.results().get("test_accuracy_per_epoch", [])[:epoch]
            self.run.update_results({"test_accuracy_per_epoch": history + [acc]})


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
    ds = data_lib.make_dataset(x_labelled, d.get("labelled_batch_size", d["batch_size"]), labels=y_labelled,
                               seed=seed, repeat=True, drop_remainder=False)
    steps_per_epoch = steps_per_epoch or b.get("steps_per_epoch") or max(1, len(x_labelled) // d["batch_size"])
    model.fit(ds, epochs=b["epochs"], steps_per_epoch=steps_per_epoch, verbose=0, shuffle=False)
    return model


# -- the run loop's view of SGAN -------------------------------------------------------------------

def prepare_data(config: dict, raw: dict | None = None, data_dir=None) -> dict:
    """The arrays one SGAN run needs: the train/test split (``raw``, default :func:`load_data`)
    and the seeded labelled subset of the config's ``labels``: ``x_labelled``, ``y_labelled``,
    ``x_unlabelled`` (also as ``images``), ``x_test``, ``y_test``, ``labelled`` (indices)."""
    raw = raw or load_data(config, data_dir)
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
    return {
        "sgan_test_accuracy": accuracy(model.classifier, data["x_test"], data["y_test"]),
        "baseline_test_accuracy": accuracy(baseline, data["x_test"], data["y_test"]),
        "num_labels": int(len(data["labelled"])), "num_unlabelled": int(len(data["x_unlabelled"])),
        "seed": int(config.get("seed", 0)), "dataset": config["data"]["name"],
        "formulation": config["sgan"]["formulation"], "generator_loss": config["sgan"]["generator_loss"],
    }


def _kind():
    from .run import ModelKind

    return ModelKind(
        name="sgan", presets=SGAN_PRESETS,
        build=lambda config: build_sgan(config, config.get("num_classes", 10)),
        load_data=lambda config, data_dir=None, download=True: prepare_data(config, data_dir=data_dir),
        dataset=_dataset, steps_per_pass=_steps_per_pass,
        total_steps=lambda config, data: config["training"]["epochs"] * _steps_per_pass(config, data),
        callbacks=lambda run, config, model, data: [TestAccuracy(data["x_test"], data["y_test"], run)],
        finish=_finish, description="semi-supervised GAN (Salimans et al. 2016), K+1 classes")


KIND = _kind()


def run_experiment(config: dict, data: dict | None = None, root=None, run_name: str = "default",
                   data_dir=None, verbose: int | str = 0, steps_per_epoch: int | None = None, **kwargs) -> dict:
    """Train the SGAN and its baseline on the same labels through :func:`ganhelpers.run.train`;
    returns the results (``sgan_test_accuracy``, ``baseline_test_accuracy``, ...) with the model,
    the baseline and the run under ``"model"``, ``"baseline"``, ``"run"`` (not in the file).
    ``data``: the train/test split (default :func:`load_data`); ``steps_per_epoch`` shortens the
    epochs (``training.steps_per_epoch``)."""
    from .run import train

    if steps_per_epoch is not None:
        config = dict(config, training={**config["training"], "steps_per_epoch": int(steps_per_epoch)})
    prepared = prepare_data(config, data, data_dir)
    result = train(dict(config, model="sgan"), run_name, root=root, data=prepared, verbose=verbose, **kwargs)
    return {**result.results, "model": result.model, "baseline": result.model.baseline, "run": result.run}


def run_seeds(config: dict, seeds=(0, 1, 2), data: dict | None = None, root=None, run_name: str = "seeds",
              **kwargs) -> dict:
    """:func:`run_experiment` once per seed (runs ``<run_name>_seed<k>``); the per-seed and mean
    accuracies go to ``<experiment>/<run_name>/results.json`` and are returned."""
    per_seed = []
    for s in seeds:
        r = run_experiment(dict(config, seed=int(s)), data=data, root=root, run_name=f"{run_name}_seed{s}", **kwargs)
        per_seed.append({k: r[k] for k in ("sgan_test_accuracy", "baseline_test_accuracy", "num_labels", "seed")})
    summary = {
        "seeds": [int(s) for s in seeds], "num_labels": per_seed[0]["num_labels"],
        "sgan_test_accuracy": [r["sgan_test_accuracy"] for r in per_seed],
        "baseline_test_accuracy": [r["baseline_test_accuracy"] for r in per_seed],
    }
    summary["sgan_test_accuracy_mean"] = float(np.mean(summary["sgan_test_accuracy"]))
    summary["baseline_test_accuracy_mean"] = float(np.mean(summary["baseline_test_accuracy"]))
    open_run(config["experiment"], run_name, config, root=root).update_results(summary)
    return summary


def label_sweep(config: dict, per_class_values, data: dict | None = None, root=None, run_prefix: str = "sweep",
                epochs: int | None = None, **kwargs) -> list[dict]:
    """Test accuracy of SGAN and baseline against the number of labels (one run per value of
    ``labels.per_class``; None = every training label). Returns one row per value."""
    rows = []
    for n in per_class_values:
        cfg = sgan_config_like(config, labels={"per_class": n}, epochs=epochs)
        r = run_experiment(cfg, data=data, root=root, run_name=f"{run_prefix}_{'all' if n is None else n}", **kwargs)
        rows.append({k: r[k] for k in ("num_labels", "sgan_test_accuracy", "baseline_test_accuracy")})
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
