"""FID and Inception Score: the formula against closed forms and scipy, streaming statistics, the
extractors (random-weight Keras InceptionV3 and a tiny graph with the 2015 graph's tensor names),
the statistics cache, the exact low-rank path for few fake samples, the training callback and
the CLI.

Pipeline tests use ``PixelFeatures``, a cheap deterministic 2048-d extractor, so they run in
seconds; the real (random-weight) InceptionV3 is built once and fed a handful of images.
"""

import io
import json
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from scipy import linalg

from ganhelpers.cli import main
from ganhelpers.experiment import open_run
from ganhelpers.metrics import fid, frechet, inception
from ganhelpers.metrics.inception import to_unit_range


class PixelFeatures(inception.Extractor):
    """8x8 thumbnails times a fixed random matrix: 64-d features in milliseconds (any D works)."""

    name = "test-pixel-features"
    dims = 64

    def __init__(self, seed=0):
        self.w = tf.constant(np.random.default_rng(seed).standard_normal((8 * 8 * 3, self.dims)).astype("float32"))

    def preprocess(self, images):
        return tf.image.resize(to_unit_range(images), (8, 8), antialias=True)

    def features(self, batch):
        return tf.tanh(tf.reshape(batch, (-1, 8 * 8 * 3)) @ self.w).numpy()


def _stats(rng, n, d=2048, scale=0.5, shift=0.0):
    """Non-negative, pool_3-like features: rank min(n - 1, d)."""
    x = np.abs(rng.standard_normal((n, d))) * scale + shift
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _scipy_reference(mu1, s1, mu2, s2):
    covmean = linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real)


def _write_folder(folder, images):
    folder.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"img_{i:03d}.png")
    return folder


# -- the formula --------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["eig", "scipy"])
@pytest.mark.parametrize("n", [40, 2000])  # rank-deficient (39 < 512) and full-rank
def test_identical_statistics_give_zero(method, n):
    mu, sigma = _stats(np.random.default_rng(n), n, d=512)
    value = frechet.frechet_distance(mu, sigma, mu, sigma, method=method)
    assert isinstance(value, float) and 0.0 <= value < 1e-6


@pytest.mark.parametrize("method", ["eig", "scipy"])
def test_diagonal_gaussians_match_the_closed_form(method):
    """Diagonal S1, S2: FID = ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 3.0, 64), rng.uniform(0.1, 3.0, 64)
    mu1, mu2 = rng.standard_normal(64), rng.standard_normal(64)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    value = frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
    assert value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("method", ["eig", "scipy"])
def test_singular_product_gives_the_closed_form(method):
    """S1 S2 = 0 (disjoint supports): the square-root term vanishes and FID = Tr S1 + Tr S2."""
    s1, s2 = np.diag([2.0, 0.0, 0.0]), np.diag([0.0, 3.0, 0.0])
    value = frechet.frechet_distance(np.zeros(3), s1, np.ones(3), s2, method=method)
    assert isinstance(value, float) and value == pytest.approx(3.0 + 2.0 + 3.0, rel=1e-9)


@pytest.mark.parametrize("d, n", [(256, 1000), (256, 60), (1024, 2000),
                                  pytest.param(2048, 300, marks=pytest.mark.slow)])
def test_eig_path_agrees_with_scipy_reference(d, n):
    """Full rank (n > d) and rank-deficient (n < d) covariances; at pool_3's 2048 dims one scipy
    sqrtm takes about a minute on a busy 2-core CPU, so the suite runs one such case: the
    rank-deficient one (fewer samples than features), where the two paths are most likely to part."""
    rng = np.random.default_rng(d + n)
    mu1, s1 = _stats(rng, n, d)
    mu2, s2 = _stats(rng, n, d, scale=0.6, shift=0.05)
    expected = _scipy_reference(mu1, s1, mu2, s2)
    assert frechet.frechet_distance(mu1, s1, mu2, s2, method="eig") == pytest.approx(expected, rel=1e-6)
    if d <= 256:  # the scipy path is the reference formula itself; one 2048-d sqrtm is enough
        assert frechet.frechet_distance(mu1, s1, mu2, s2, method="scipy") == pytest.approx(expected, rel=1e-9)


def test_symmetry_and_input_checks():
    rng = np.random.default_rng(2)
    mu1, s1 = _stats(rng, 100, d=128)
    mu2, s2 = _stats(rng, 300, d=128, scale=0.8)
    swapped = frechet.frechet_distance(mu2, s2, mu1, s1)
    assert frechet.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(swapped, rel=1e-9)
    not_psd = s1 - 2 * np.eye(128) * np.linalg.eigvalsh(s1).max()
    for method in ("eig", "scipy"):
        with pytest.raises(ValueError, match="not positive semi-definite|imaginary|negative"):
            frechet.frechet_distance(mu1, not_psd, mu2, s2, method=method)
    with pytest.raises(ValueError, match="different sizes"):
        frechet.frechet_distance(mu1, s1, mu2[:64], s2[:64, :64])
    with pytest.raises(ValueError, match="NaN"):
        frechet.frechet_distance(mu1 * np.nan, s1, mu2, s2)


# -- the low-rank path (fewer fake samples than dimensions) -------------------------------------

@pytest.fixture(scope="module")
def real_2048():
    """Well-conditioned 2048-d real statistics (3000 samples: full rank) and the eig path's root
    factor of sigma1, built once: one 2048 x 2048 eigh takes seconds on this machine."""
    mu1, s1 = _stats(np.random.default_rng(10), 3000)
    return mu1, s1, frechet._psd_root_factor(s1, "1")


def _fake(rng, m, d=2048):
    return np.abs(rng.standard_normal((m, d))) * 0.6 + 0.05


@pytest.mark.parametrize("m", [16, 100, 1000])
def test_low_rank_path_agrees_with_the_eig_path_at_2048d(real_2048, m):
    mu1, s1, root1 = real_2048
    x = _fake(np.random.default_rng(m), m)
    mu2, s2 = x.mean(axis=0), np.cov(x, rowvar=False)
    diff = mu1 - mu2
    # the eig path of trace_sqrt_product, with its eigh(S1) factor computed once by the fixture
    expected = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * frechet._trace_sqrt_from_root(root1, s2)
    value = frechet.frechet_distance_from_activations(mu1, s1, x)
    assert isinstance(value, float) and value == pytest.approx(expected, rel=1e-6)
    if m == 100:  # the public eig path end to end once (its own eigh of sigma1)
        assert value == pytest.approx(frechet.frechet_distance(mu1, s1, mu2, s2), rel=1e-6)


@pytest.mark.parametrize("m", [2, 16, 100, 300])  # 300 >= 256 dims: falls back to the eig path
def test_low_rank_path_agrees_with_scipy_and_eig_at_256d(m):
    rng = np.random.default_rng(11)
    mu1, s1 = _stats(rng, 1000, d=256)
    x = _fake(rng, m, d=256)
    mu2, s2 = x.mean(axis=0), np.cov(x, rowvar=False)
    value = frechet.frechet_distance_from_activations(mu1, s1, x)
    assert value == pytest.approx(frechet.frechet_distance(mu1, s1, mu2, s2), rel=1e-9)
    assert value == pytest.approx(_scipy_reference(mu1, s1, mu2, s2), rel=1e-6)


def test_low_rank_path_with_duplicates_and_degenerate_inputs():
    rng = np.random.default_rng(12)
    mu1, s1 = _stats(rng, 1000, d=256)
    x = np.repeat(_fake(rng, 3, d=256), [4, 1, 5], axis=0)  # 10 samples of rank 2 < M - 1 = 9
    mu2, s2 = x.mean(axis=0), np.cov(x, rowvar=False)
    value = frechet.frechet_distance_from_activations(mu1, s1, x)
    assert value == pytest.approx(frechet.frechet_distance(mu1, s1, mu2, s2), rel=1e-9)
    assert value == pytest.approx(_scipy_reference(mu1, s1, mu2, s2), rel=1e-6)
    # the fake Gaussian against its own statistics: exactly the identical-statistics case
    assert 0.0 <= frechet.frechet_distance_from_activations(mu2, s2, x) < 1e-9 * np.trace(s2)
    same = np.repeat(x[:1], 5, axis=0)  # zero covariance: only the mean and Tr S1 remain
    diff = mu1 - same[0]
    value = frechet.frechet_distance_from_activations(mu1, s1, same)
    assert value == pytest.approx(diff @ diff + np.trace(s1), rel=1e-12)
    not_psd = s1 - 2 * np.eye(256) * np.linalg.eigvalsh(s1).max()
    with pytest.raises(ValueError, match="not positive semi-definite"):
        frechet.frechet_distance_from_activations(mu1, not_psd, x)
    flipped = s1.copy()  # PSD diagonal, negative along the samples' direction
    u = (x[0] - mu2) / np.linalg.norm(x[0] - mu2)
    flipped -= 3 * (u @ s1 @ u) * np.outer(u, u) + 1e-3 * np.trace(s1) * np.outer(u, u)
    with pytest.raises(ValueError, match="not positive semi-definite|negative"):
        frechet.frechet_distance_from_activations(mu1, flipped, x)
    with pytest.raises(ValueError, match="M >= 2"):
        frechet.frechet_distance_from_activations(mu1, s1, x[:1])
    with pytest.raises(ValueError, match="M >= 2, 256"):
        frechet.frechet_distance_from_activations(mu1, s1, x[:, :128])
    with pytest.raises(ValueError, match="NaN"):
        frechet.frechet_distance_from_activations(mu1, s1, x * np.nan)


# -- streaming statistics -----------------------------------------------------------------------

def test_running_stats_equal_one_shot_statistics():
    x = np.random.default_rng(3).standard_normal((517, 64)) * 3 + 1e4  # large offset: no cancellation
    stats = frechet.RunningStats()
    for start, stop in [(0, 1), (1, 50), (50, 51), (51, 300), (300, 517)]:
        stats.update(x[start:stop])
    mu, sigma = stats.result()
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    assert mu.dtype == sigma.dtype == np.float64


def test_activation_statistics_stream_every_source_alike(tmp_path):
    images = np.random.default_rng(4).integers(0, 256, (37, 16, 16, 3), dtype=np.uint8)
    ex = PixelFeatures()
    feats = ex(images).astype(np.float64)
    mu, sigma = feats.mean(axis=0), np.cov(feats, rowvar=False)
    folder = _write_folder(tmp_path / "imgs", images)
    sources = {"uint8 array": images, "float array": images / 127.5 - 1.0,
               "dataset of images": tf.data.Dataset.from_tensor_slices(images),
               "dataset of (x, y) batches": tf.data.Dataset.from_tensor_slices((images, np.arange(37))).batch(5),
               "folder": folder}
    for what, source in sources.items():
        m, s = fid.activation_statistics(source, ex, batch_size=8)
        np.testing.assert_allclose(m, mu, rtol=1e-5, atol=1e-6, err_msg=what)
        np.testing.assert_allclose(s, sigma, rtol=1e-4, atol=1e-6, err_msg=what)
    m, _ = fid.activation_statistics(images, ex, batch_size=8, num_samples=10)
    np.testing.assert_allclose(m, feats[:10].mean(axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[-1, 1\]"):
        fid.activation_statistics(images.astype(np.float32), ex)  # 0..255 floats are rejected


def test_real_statistics_cache_and_fid_from_any_source(tmp_path):
    rng = np.random.default_rng(5)
    real = rng.integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
    fake = np.clip(real.astype(int) + rng.integers(-60, 60, real.shape), 0, 255).astype(np.uint8)
    ex = PixelFeatures()
    path = fid.statistics_cache_path(tmp_path, "toy", 16, ex)
    assert path.name == "fid_stats_toy_16px_test-pixel-features.npz"
    mu, sigma = fid.real_statistics(real, ex, cache_path=path)
    mu_cached, sigma_cached = fid.real_statistics(fake, ex, cache_path=path)  # loads, ignores the images
    np.testing.assert_array_equal(mu, mu_cached)
    np.testing.assert_array_equal(sigma, sigma_cached)
    assert fid.load_statistics(path)[2] == ex.name
    other = PixelFeatures()
    other.name = "another-network"
    with pytest.raises(ValueError, match="holds statistics from"):
        fid.real_statistics(real, other, cache_path=path)
    expected = fid.fid(real, fake, extractor=ex)
    assert expected > 0
    assert fid.fid(path, fake, extractor=ex) == pytest.approx(expected, rel=1e-9)
    assert fid.fid((mu, sigma), _write_folder(tmp_path / "fake", fake), extractor=ex) == pytest.approx(expected,
                                                                                                      rel=1e-5)


# -- Inception Score ----------------------------------------------------------------------------

def test_inception_score_exact_values():
    one_hot = np.eye(10)[np.arange(100) % 10]
    assert frechet.inception_score_from_probabilities(one_hot, splits=1) == pytest.approx((10.0, 0.0))
    assert frechet.inception_score_from_probabilities(np.full((50, 7), 1 / 7), splits=5) == pytest.approx((1.0, 0.0))
    images = np.zeros((16, 8, 8, 1), np.float32)  # 2 splits of 8: each class twice per split
    score, _ = fid.inception_score(images, splits=2, classifier=lambda b: np.eye(4)[np.arange(len(b)) % 4])
    assert score == pytest.approx(4.0)


# -- extractors ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_inception():
    return inception.inception_extractor(None)


def test_random_keras_inception_gives_2048_features(random_inception):
    images = np.random.default_rng(6).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    ex = random_inception
    assert ex.name == "keras-inceptionv3-random" and "plumbing only" in ex.note
    assert inception.inception_extractor("none") is ex  # built once per process
    feats = ex(images)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    np.testing.assert_allclose(ex(images / 127.5 - 1.0), feats, rtol=1e-4, atol=1e-5)  # uint8 == [-1, 1]
    assert ex(images[..., :1]).shape == (2, 2048)  # grayscale is repeated to RGB
    probs = ex.probabilities(ex.preprocess(images))
    assert probs.shape == (2, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert "plumbing only" in ex.label(1.5)


def _tiny_2015_graph(path, seed=0):
    """A graph with the 2015 FID graph's tensor names: Cast -> ExpandDims -> ResizeBilinear(299) ->
    (x - 128) / 128 -> ... -> pool_3 (N, 1, 1, 2048) -> pool_3/_reshape [1, 2048] -> softmax/logits."""
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        image = tf.compat.v1.placeholder(tf.float32, [None, None, 3], name="Cast")
        x = tf.expand_dims(image, 0, name="ExpandDims")
        x = tf.raw_ops.ResizeBilinear(images=x, size=tf.constant([299, 299]), name="ResizeBilinear")
        x = tf.multiply(tf.subtract(x, 128.0, name="Sub"), 1 / 128.0, name="Mul")
        x = tf.nn.avg_pool2d(x, 8, 8, "VALID")
        x = tf.nn.relu(tf.nn.conv2d(x, rng.standard_normal((1, 1, 3, 2048)).astype("float32"), 1, "VALID"))
        pool = tf.nn.avg_pool2d(x, 37, 1, "VALID", name="pool_3")
        flat = tf.reshape(pool, [1, 2048], name="pool_3/_reshape")
        weight = tf.constant(rng.standard_normal((2048, 1008)).astype("float32") * 0.01, name="softmax/weights")
        tf.nn.softmax(tf.matmul(flat, weight, name="softmax/logits/MatMul"), name="softmax")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return graph


def test_2015_graph_loader_matches_the_graph_run_image_by_image(tmp_path):
    graph = _tiny_2015_graph(tmp_path / "classify_image_graph_def.pb")
    images = np.random.default_rng(7).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with tf.compat.v1.Session(graph=graph) as sess:  # TTUR's way: one 0..255 image per run
        pool3 = np.stack([sess.run("pool_3:0", {"Cast:0": im.astype("float32")}).reshape(-1) for im in images])
        softmax = np.concatenate([sess.run("softmax:0", {"Cast:0": im.astype("float32")}) for im in images])

    # the archive as downloaded: extracted by the same code that handles the real one (file:// URL)
    archive = tmp_path / "dl" / "inception-2015-12-05.tgz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "classify_image_graph_def.pb", arcname="classify_image_graph_def.pb")
        info = tarfile.TarInfo("LICENSE")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    pb = inception.download_2015_graph(tmp_path / "cache", url=archive.as_uri())
    assert pb.name == "classify_image_graph_def.pb" and pb.read_bytes() == (tmp_path / pb.name).read_bytes()

    ex = inception.inception_extractor(str(pb))
    assert ex.name == "tf-inception-2015-12-05" and ex.note == ""
    np.testing.assert_allclose(ex(images), pool3, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ex(images / 127.5 - 1.0), pool3, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ex.probabilities(ex.preprocess(images)), softmax, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="no tensor 'pool_3:0'"):
        g = tf.Graph()
        with g.as_default():
            tf.expand_dims(tf.compat.v1.placeholder(tf.float32, [2, 2, 3]), 0, name="ExpandDims")
        (tmp_path / "bad.pb").write_bytes(g.as_graph_def().SerializeToString())
        inception.inception_extractor(str(tmp_path / "bad.pb"))


# -- callback and CLI ---------------------------------------------------------------------------

def _tiny_dcgan():
    from ganhelpers.dcgan import DCGAN

    generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8 * 8, activation="tanh"),
                                  keras.layers.Reshape((8, 8, 1))])
    discriminator = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model = DCGAN(generator, discriminator, seed=0)
    model.compile()
    return model


def test_fid_monitor_logs_to_tensorboard_results_and_epoch_logs(model_data):
    """The one metrics monitor with FID alone, against real statistics in an .npz (no real images)."""
    from ganhelpers.metrics import MetricsMonitor

    run = open_run("fid_monitor", "a", root=model_data)
    ex = PixelFeatures()
    real = np.random.default_rng(8).uniform(-1, 1, (64, 8, 8, 1)).astype("float32")
    stats_path = fid.save_statistics(model_data / "real.npz", *fid.activation_statistics(real, ex), ex)
    model = _tiny_dcgan()
    monitor = MetricsMonitor(run, real_stats=stats_path, metrics=["fid"], every_n_epochs=2, num_samples=20,
                             extractor=ex, batch_size=8)
    history = model.fit(real, epochs=4, batch_size=16, verbose=0, callbacks=[monitor])
    assert "fid" in history.history and len(history.history["fid"]) == 2  # epochs 2 and 4 only
    results = json.loads(run.results_path.read_text())
    assert [h[0] for h in results["fid_history"]] == [2, 4]
    assert results["fid"] == results["fid_history"][-1][1] > 0
    assert results["fid_extractor"] == ex.name and results["fid_note"] == ""
    assert "metrics_network" not in results  # FID's network is fid_extractor: another monitor may own metrics_*
    from ganhelpers import summaries

    summaries.close(run)
    logged = summaries.read_scalars(run.logs)["metrics/fid"]
    assert [s for s, _ in logged] == [8, 16]  # the model's step at the ends of epochs 2 and 4 (4 steps each)
    assert [v for _, v in logged] == pytest.approx([h[1] for h in results["fid_history"]])

    state = model.rng.state.numpy()
    monitor.evaluate()
    np.testing.assert_array_equal(model.rng.state.numpy(), state)  # training noise is not disturbed
    with pytest.raises(ValueError, match="come from test-pixel-features, but the monitor uses other"):
        other = PixelFeatures(seed=1)
        other.name = "other"
        MetricsMonitor(run, real_stats=stats_path, metrics=["fid"], extractor=other).on_train_begin()
    with pytest.raises(ValueError, match="kid need real_images"):
        MetricsMonitor(run, real_stats=stats_path, metrics=["fid", "kid"], extractor=ex)


@pytest.mark.parametrize("num_samples", [20, 80])  # below and above the 64 feature dimensions
def test_fid_monitor_equals_frechet_distance_on_the_same_samples(num_samples, model_data, monkeypatch):
    """The low-rank path (20 < 64) and the cached root factor (80 >= 64) give the value the plain
    formula gives on the statistics of the same generated images; eigh(sigma1) runs at most once."""
    from ganhelpers.metrics import MetricsMonitor

    ex = PixelFeatures()
    real = np.random.default_rng(13).uniform(-1, 1, (100, 8, 8, 1)).astype("float32")
    mu1, s1 = fid.activation_statistics(real, ex)
    model = _tiny_dcgan()
    monitor = MetricsMonitor(open_run("fid_monitor", "b", root=model_data), real_stats=(mu1, s1), metrics=["fid"],
                             num_samples=num_samples, extractor=ex, batch_size=8)
    monitor.set_model(model)
    calls = []
    factor = frechet._psd_root_factor
    monkeypatch.setattr(frechet, "_psd_root_factor", lambda *a: calls.append(1) or factor(*a))
    values = [monitor.evaluate()["fid"], monitor.evaluate()["fid"]]
    monkeypatch.undo()
    fake = model.sample(num_samples, seed=0)  # the monitor's samples: seed 0, never the training RNG
    mu2, s2 = fid.activation_statistics(fake, ex, batch_size=8)
    expected = frechet.frechet_distance(mu1, s1, mu2, s2)
    assert expected > 0 and values == pytest.approx([expected, expected], rel=1e-9)
    assert len(calls) == (0 if num_samples < ex.dims else 1)
    # fid.fid on an array of fewer fake images than dimensions takes the low-rank path too
    fake = np.asarray(model.generate(num_samples))
    mu3, s3 = fid.activation_statistics(fake, ex)
    assert fid.fid((mu1, s1), fake, extractor=ex) == pytest.approx(frechet.frechet_distance(mu1, s1, mu3, s3), rel=1e-9)
    # the same monitor with real images instead of statistics and more metrics: one feature pass, same FID
    both = MetricsMonitor(open_run("fid_monitor", "c", root=model_data), real, metrics=["fid", "kid"],
                          num_samples=num_samples, extractor=ex, batch_size=8, kid_subset_size=10, kid_subsets=3)
    both.set_model(model)
    extracted = []
    original = ex.__class__.__call__
    monkeypatch.setattr(ex.__class__, "__call__", lambda self, x: extracted.append(len(x)) or original(self, x))
    got = both.evaluate()
    assert sum(extracted) == len(real) + num_samples  # the real images once, the samples once for both metrics
    rf, ff = fid.activations(real, ex).astype(np.float64), fid.activations(model.sample(num_samples, seed=0), ex)
    assert got["fid"] == pytest.approx(
        frechet.frechet_distance_from_activations(rf.mean(axis=0), np.cov(rf, rowvar=False), ff), rel=1e-5)


def test_cli_fid_on_two_folders_and_on_their_statistics(tmp_path, capsys, random_inception):
    rng = np.random.default_rng(9)
    a = _write_folder(tmp_path / "a", rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    b = _write_folder(tmp_path / "b", rng.integers(0, 128, (3, 32, 32, 3), dtype=np.uint8))
    assert main(["fid", str(a), str(b), "--weights", "none", "--batch", "2"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("FID: ") and last.endswith("(random InceptionV3 weights: plumbing only, not comparable)")
    value = float(last.split()[1])
    for name, folder in (("a", a), ("b", b)):
        stats = fid.activation_statistics(folder, random_inception, batch_size=2)
        fid.save_statistics(tmp_path / f"{name}.npz", *stats, random_inception)
    assert main(["fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 0
    assert float(capsys.readouterr().out.strip().splitlines()[-1].split()[1]) == pytest.approx(value, rel=1e-4)
    assert value > 0
