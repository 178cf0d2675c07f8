"""KID, precision/recall (+ density/coverage), SWD and MS-SSIM: against their definitions, on the real
digits through the digit-features network, in a training callback and on the command line."""

import argparse
import json

import numpy as np
import pytest
import tensorflow as tf
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist

from ganhelpers import metrics
from ganhelpers.data import digits
from ganhelpers.metrics.features import extract, feature_extractor


@pytest.fixture(scope="module")
def digits_data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def digit_net(digits_data_dir):
    """The digit-features network, trained once for this module (in ``models/`` of a temporary data
    folder); the CLI tests pass that folder as --data-dir and reuse it (one network per file and process)."""
    return feature_extractor("digits", data_dir=digits_data_dir)


@pytest.fixture(scope="module")
def real(digit_net):
    """The 1,797 real digits (uint8, 32x32x1), their labels and their digit features."""
    d = digits(32)
    return d["images"], d["labels"], extract(d["images"], digit_net).astype(np.float64)


def unbiased_mmd2_by_loops(x, y):
    """The unbiased MMD^2 estimator written out term by term (Gretton et al. 2012, eq. 3)."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


# -- KID --------------------------------------------------------------------------------------------

def test_kid_equals_the_unbiased_estimator_written_out():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    value, std = metrics.kid(x, y, subset_size=100)  # both sets smaller than a subset: one evaluation
    assert value == pytest.approx(unbiased_mmd2_by_loops(x, y), abs=1e-10)
    assert std == 0.0
    # subsets: the mean over subsets is the mean of the estimator on each subset
    sub = metrics.kid(x, y, num_subsets=3, subset_size=4, seed=1)
    rng = np.random.default_rng(1)
    per_subset = []
    for _ in range(3):
        i, j = rng.choice(7, 4, replace=False), rng.choice(9, 4, replace=False)
        per_subset.append(unbiased_mmd2_by_loops(x[i], y[j]))
    assert sub == pytest.approx((np.mean(per_subset), np.std(per_subset)), abs=1e-10)


def test_kid_is_unbiased_on_disjoint_halves_of_the_real_digits(real):
    _, _, f = real
    repeats, m = 20, 150
    unbiased, biased = [], []
    for r in range(repeats):
        order = np.random.default_rng(r).permutation(len(f))
        a, b = f[order[:m]], f[order[898:898 + m]]
        unbiased.append(metrics.kid(a, b, num_subsets=1, subset_size=m)[0])
        k = metrics.polynomial_kernel
        biased.append(k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean())  # V-statistic: diagonals kept
    standard_error = np.std(unbiased) / np.sqrt(repeats)
    assert abs(np.mean(unbiased)) < 3 * standard_error
    assert np.mean(biased) > 5 * standard_error  # the check has power: the biased estimator fails it


# -- precision / recall / density / coverage --------------------------------------------------------

def test_blocked_knn_metrics_equal_brute_force_distances():
    rng = np.random.default_rng(0)
    r, f, k = rng.normal(size=(50, 8)), rng.normal(0.5, 1.0, size=(40, 8)), 3
    rr, ff, rf = cdist(r, r), cdist(f, f), cdist(f, r)
    np.fill_diagonal(rr, np.inf)
    np.fill_diagonal(ff, np.inf)
    r_rad, f_rad = np.sort(rr, axis=1)[:, k - 1], np.sort(ff, axis=1)[:, k - 1]
    inside = rf <= r_rad[None, :]
    expected = {"precision": inside.any(1).mean(), "recall": (rf <= f_rad[:, None]).any(0).mean(),
                "density": inside.sum() / (k * len(f)), "coverage": inside.any(0).mean()}
    for dtype in (np.float64, np.float32):
        got = metrics.precision_recall(r, f, k=k, block_rows=7, dtype=dtype)  # 7-row blocks
        assert {m: got[m] for m in expected} == pytest.approx(expected, abs=1e-12)


def brute_force_prdc(real, fake, k):
    """Precision, recall, density and coverage counted in pure Python on integer features: exact
    squared distances, closed balls (a point at exactly the radius is inside)."""
    real, fake = [[int(v) for v in row] for row in real], [[int(v) for v in row] for row in fake]

    def d2(a, b):
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))

    def radii(points):
        return [sorted(d2(p, q) for j, q in enumerate(points) if j != i)[k - 1] for i, p in enumerate(points)]

    real_r, fake_r = radii(real), radii(fake)
    inside = [[d2(f, r) <= real_r[i] for i, r in enumerate(real)] for f in fake]  # fake j in real ball i
    return {"precision": sum(any(row) for row in inside) / len(fake),
            "recall": sum(any(d2(f, r) <= fake_r[j] for j, f in enumerate(fake)) for r in real) / len(real),
            "density": sum(map(sum, inside)) / (k * len(fake)),
            "coverage": sum(any(row[i] for row in inside) for i in range(len(real))) / len(real),
            "real_radii": real_r}


def tied_integer_features():
    """Integer features with many exactly tied distances: small values, and values on a large offset
    (where float32 round-off of centred products used to decide the ties)."""
    rng = np.random.default_rng(0)
    return {"small": (rng.integers(0, 3, (40, 5)), rng.integers(0, 4, (30, 5))),
            "offset": (rng.integers(0, 5, (60, 64)) * 7 + 1000, rng.integers(0, 5, (50, 64)) * 7 + 1000)}


@pytest.mark.parametrize("float64_stage", [0.0, 1.0])  # every float32 block redone in float64, or none
def test_ties_on_the_balls_boundary_are_decided_exactly_as_a_brute_force_count(float64_stage, monkeypatch):
    from ganhelpers.metrics import prdc

    monkeypatch.setattr(prdc, "_FLOAT64_STAGE", float64_stage)
    for name, (r, f) in tied_integer_features().items():
        for k in (1, 3, 5):
            expected = brute_force_prdc(r, f, k)
            assert list(metrics.knn_radii(r, k)) == expected["real_radii"], (name, k)
            for dtype in (np.float32, np.float64):
                for block_rows in (None, 7):
                    got = metrics.precision_recall(r, f, k=k, dtype=dtype, block_rows=block_rows)
                    assert {m: got[m] for m in metrics.PR_METRICS} == \
                        {m: expected[m] for m in metrics.PR_METRICS}, (name, k, dtype, block_rows)


def test_a_copy_of_the_real_set_lies_on_every_boundary_and_counts_inside():
    # continuous features, no tied distances: each real point is in its own ball and in the balls of
    # the k points it is nearest to, so density is exactly (k + 1) / k, and everything else 1
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    for k in (3, 5):
        got = metrics.precision_recall(x, x.copy(), k=k)
        assert (got["precision"], got["recall"], got["coverage"]) == (1.0, 1.0, 1.0)
        assert got["density"] == (k + 1) / k
    # tied integer features: more than k points share the k-th distance, so the copy's density is the
    # brute-force count, above 4/3
    r, _ = tied_integer_features()["small"]
    expected = brute_force_prdc(r, r.copy(), 3)
    got = metrics.precision_recall(r, r.copy(), k=3)
    assert got["density"] == expected["density"] > 4 / 3
    assert (got["precision"], got["recall"], got["coverage"]) == (1.0, 1.0, 1.0)
    assert metrics.exact_squared_distances(r, r.copy(), [0, 1], [1, 0]).tolist() == [
        float(sum((int(a) - int(b)) ** 2 for a, b in zip(r[0], r[1], strict=True)))] * 2


def test_precision_recall_separate_quality_from_coverage_on_digit_features(real, digit_net):
    images, labels, f = real
    order = np.random.default_rng(0).permutation(len(f))
    half_a, half_b = order[:898], order[898:]
    same = metrics.precision_recall(f[half_a], f[half_b])
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    assert 0.8 < same["density"] < 1.2 and same["coverage"] > 0.8
    # a "generator" that only draws the classes 0-4: every sample is good, half the data is missed
    low = half_b[labels[half_b] < 5]
    half = metrics.precision_recall(f[half_a], f[low])
    assert half["precision"] > 0.8
    assert 0.35 < half["recall"] < 0.65 and 0.35 < half["coverage"] < 0.6
    noise = np.random.default_rng(1).uniform(-1, 1, (300, 32, 32, 1)).astype(np.float32)
    junk = metrics.precision_recall(f, extract(noise, digit_net))
    assert junk["precision"] < 0.05 and junk["density"] < 0.05


# -- SWD and MS-SSIM --------------------------------------------------------------------------------

def test_swd_draws_patches_per_set_as_pggan_so_identical_sets_give_sampling_noise_only(real):
    """PGGAN's metrics/sliced_wasserstein.py draws each set's neighbourhoods at random on their own:
    two copies of one set then differ by the sampling noise of their patches (not exactly 0, as
    shared positions would give), and that noise falls as more patches are drawn."""
    x = real[0][:64].astype(np.float32) / 127.5 - 1.0
    same = {p: metrics.sliced_wasserstein(x, x.copy(), patches_per_image=p) for p in (32, 128, 512)}
    assert same[128]["sizes"] == [32, 16]
    for p in same:
        assert all(v > 0 for v in same[p]["levels"]) and same[p]["mean"] > 0
    assert same[512]["mean"] < same[128]["mean"] < same[32]["mean"]
    assert same[512]["mean"] < 0.5 * same[32]["mean"]  # about 1/sqrt(patches): 4x fewer, half the noise
    # deterministic under a seed, and the seed matters
    assert metrics.sliced_wasserstein(x, x.copy()) == same[128]
    assert metrics.sliced_wasserstein(x, x.copy(), seed=1)["mean"] != same[128]["mean"]


def test_swd_grows_with_blur_above_the_identical_sets_value(real):
    x = real[0][:64].astype(np.float32) / 127.5 - 1.0
    same = metrics.sliced_wasserstein(x, x.copy())
    blurred = [metrics.sliced_wasserstein(x, gaussian_filter(x, (0, s, s, 0))) for s in (0.5, 1.0, 2.0)]
    assert same["mean"] < blurred[0]["mean"] < blurred[1]["mean"] < blurred[2]["mean"]
    assert same["levels"][0] < blurred[0]["levels"][0]  # the finest level sees a slight blur first
    for level in range(2):  # every pyramid level, once the blur is clear
        assert blurred[0]["levels"][level] < blurred[1]["levels"][level] < blurred[2]["levels"][level]


def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise(real):
    one = np.repeat(real[0][:1].astype(np.float32) / 127.5 - 1.0, 40, axis=0)
    assert metrics.ms_ssim(one, num_pairs=100) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(0)
    values = [metrics.ms_ssim(np.clip(one + s * rng.standard_normal(one.shape), -1, 1), num_pairs=100)
              for s in (0.05, 0.1, 0.2, 0.4)]
    assert np.all(np.diff([1.0, *values]) < 0), values  # strictly falling as the noise grows
    # the real digits are diverse: far below 1
    assert metrics.ms_ssim(real[0], num_pairs=300) < 0.5


def test_ms_ssim_uses_the_scales_the_size_allows():
    assert [metrics.ms_ssim_scales(s, s) for s in (11, 20, 21, 32, 64, 128, 176, 256)] == [1, 1, 2, 2, 3, 4, 5, 5]
    assert sum(metrics.ms_ssim_power_factors(2)) == pytest.approx(1.0)
    # all five scales: tf.image.ssim_multiscale's own default (Wang et al.'s exponents)
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(-1, 1, (2, 176, 176, 1)).astype(np.float32) for _ in range(2))
    expected = tf.image.ssim_multiscale((a + 1) / 2, (b + 1) / 2, max_val=1.0).numpy()
    assert metrics.ms_ssim_between(a, b) == pytest.approx(expected, rel=1e-5)


def test_bad_input_names_the_metric_and_what_it_needs():
    rng = np.random.default_rng(0)
    nan = rng.normal(size=(10, 4))
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="KID: fake features contain NaN"):
        metrics.kid(rng.normal(size=(10, 4)), nan)
    with pytest.raises(ValueError, match="precision/recall needs at least 4 real samples, got 3"):
        metrics.precision_recall(rng.normal(size=(3, 4)), rng.normal(size=(10, 4)), k=3)
    with pytest.raises(ValueError, match="SWD: fake images of mixed sizes.*at least 16x16"):
        metrics.sliced_wasserstein(np.zeros((4, 32, 32, 1)), [np.zeros((32, 32, 1)), np.zeros((16, 16, 1))])
    with pytest.raises(ValueError, match="SWD needs images of at least 16x16, got 8x8"):
        metrics.sliced_wasserstein(np.zeros((4, 8, 8, 1)), np.zeros((4, 8, 8, 1)))
    with pytest.raises(ValueError, match="MS-SSIM needs at least 2 generated images, got 1"):
        metrics.ms_ssim(np.zeros((1, 32, 32, 1)))


# -- the training callback --------------------------------------------------------------------------

def _points_per_tag(logdir) -> dict:
    counts: dict = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                counts[value.tag] = counts.get(value.tag, 0) + 1
    return counts


def test_metrics_monitor_logs_every_evaluation_to_tensorboard_and_results(real, digit_net, model_data):
    from ganhelpers.data import make_dataset
    from ganhelpers.dcgan import build_dcgan, dcgan_config
    from ganhelpers.experiment import open_run

    images = real[0]
    run = open_run("metrics_test", "r", root=model_data)
    model = build_dcgan(dcgan_config("smoke"))
    data = make_dataset(images, 32, repeat=True)
    cache = metrics.features_cache_path(model_data, "digits", 32, digit_net)

    def monitor(every):
        return metrics.MetricsMonitor(run, images[:300], metrics=["fid", "kid", "pr", "swd", "msssim"],
                                      every_n_epochs=every, num_samples=48, extractor=digit_net, cache_path=cache,
                                      kid_subsets=5, kid_subset_size=32, msssim_pairs=50)

    history = model.fit(data, epochs=3, steps_per_epoch=2, callbacks=[monitor(1)], verbose=0)
    assert cache.is_file()  # real features computed once and kept
    # resume: epochs 4 and 5 with an evaluation every 2 epochs -> only epoch 4 is evaluated
    model.fit(data, epochs=5, initial_epoch=3, steps_per_epoch=2, callbacks=[monitor(2)], verbose=0)

    names = ["fid", "kid", "precision", "recall", "density", "coverage", "swd", "msssim"]
    counts = _points_per_tag(run.logs)
    assert {n: counts.get(f"metrics/{n}") for n in names} == {n: 4 for n in names}
    assert counts["metrics/swd_32px"] == counts["metrics/swd_16px"] == 4
    results = json.loads(run.results_path.read_text())
    for name in names:
        assert [e for e, _ in results[f"{name}_history"]] == [1, 2, 3, 4]
        assert [v for _, v in results[f"{name}_history"][:3]] == pytest.approx(history.history[name])
        assert results[name] == results[f"{name}_history"][-1][1]
    assert results["metrics_network"] == digit_net.name and results["metrics_num_fake"] == 48
    assert results["metrics_num_real"] == 300 and set(results["swd_levels"]) == {"32px", "16px"}
    assert 0 <= results["precision"] <= 1 and results["kid"] > 0.05  # a 10-step generator is far from real
    assert 0 < results["msssim"] <= 1 and results["kid_std"] > 0
    assert 0 < results["msssim_real"] < 0.5  # the real digits: diverse


# -- the command line -------------------------------------------------------------------------------

def _eval(argv) -> int:
    from ganhelpers.cli import add_eval_parser

    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["eval", *argv])
    return args.fn(args)


def _write_pngs(folder, images):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im[..., 0]).save(folder / f"{i:04d}.png")
    return folder


def _lines(out) -> dict:
    return dict(line.split(": ", 1) for line in out.strip().splitlines())


def test_eval_cli_prints_one_line_per_metric(real, digit_net, digits_data_dir, tmp_path, capsys):
    images, labels, _ = real
    real_dir = _write_pngs(tmp_path / "real", images[:150])
    fake_dir = _write_pngs(tmp_path / "fake", images[150:300][labels[150:300] < 5])  # only classes 0-4
    assert _eval([str(real_dir), str(fake_dir), "--features", "digits", "--data-dir", str(digits_data_dir)]) == 0
    text = capsys.readouterr().out
    assert "training the digit classifier" not in text  # --data-dir: the cached one, in that folder's models/
    out = _lines(text)
    n_fake = int((labels[150:300] < 5).sum())
    assert out["network"].startswith(f"{digit_net.name} (4096-d penultimate layer")
    assert f"real: 150 (folder {real_dir})" in out["network"] and f"fake: {n_fake} (folder" in out["network"]
    assert float(out["FID"]) > 0
    kid_mean, rest = out["KID"].split(" ± ")
    assert float(kid_mean) > 0 and float(rest.split()[0]) > 0 and rest.endswith(f"(100 subsets of {n_fake // 2})")
    assert float(out["precision"].split()[0]) > 0.7 and float(out["recall"].split()[0]) < 0.75
    assert out["SWD"].startswith("32px ") and ", 16px " in out["SWD"] and ", mean " in out["SWD"]
    assert 0 < float(out["MS-SSIM"].split()[0]) < 0.5 and "real images: " in out["MS-SSIM"]


def test_eval_cli_on_a_run_folder_and_npz_files(real, digit_net, digits_data_dir, tmp_path, capsys):
    from ganhelpers.dcgan import dcgan_config
    from ganhelpers.run import train

    images = real[0]
    result = train(dcgan_config("smoke"), "evalme", root=tmp_path / "model_data", steps=2, tensorboard=False,
                   verbose=0)
    feats = metrics.save_features(tmp_path / "real_feats.npz", real[2][:200], digit_net)
    digits = ["--features", "digits", "--data-dir", str(digits_data_dir)]
    assert _eval([str(feats), str(result.run.dir), *digits, "--metrics", "kid", "pr", "-n", "40"]) == 0
    out = _lines(capsys.readouterr().out)
    assert "real: 40 (npz of features" in out["network"] and "fake: 40 (run " in out["network"]  # -n: both sides
    assert set(out) == {"network", "KID", "precision", "recall", "density", "coverage"}
    assert float(out["precision"].split()[0]) < 0.5  # two training steps draw no digits
    with pytest.raises(SystemExit, match="SWD and MS-SSIM need pixels"):
        _eval([str(feats), str(result.run.dir), *digits, "--metrics", "swd"])
    stats = tmp_path / "stats.npz"
    np.savez(stats, mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(SystemExit, match="only fid can use it, not kid"):
        _eval([str(stats), str(result.run.dir), "--metrics", "fid", "kid"])
    mixed = _write_pngs(tmp_path / "mixed", [images[0], images[1]])
    from PIL import Image

    Image.fromarray(np.zeros((20, 20), np.uint8)).save(mixed / "odd.png")
    with pytest.raises(ValueError, match="mixed sizes"):
        _eval([str(mixed), str(mixed), *digits])
