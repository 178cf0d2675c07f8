"""The digit features' classifier is cached with the datasets (``<data folder>/models``: on Colab the
notebooks' DATA_DIR is on Drive), trained once, says so while it trains, and is reused from disk by a
new process (a new Colab session) without training again."""

import numpy as np

from ganhelpers import data, evaluate
from ganhelpers.metrics import features


def test_the_digit_classifier_is_cached_in_the_data_folder_and_a_new_session_reuses_it(tmp_path, monkeypatch,
                                                                                        capsys):
    trained = []
    train = evaluate.digit_classifier

    def counting(*args, **kwargs):
        trained.append(args)
        return train(*args, **kwargs)

    monkeypatch.setattr(evaluate, "digit_classifier", counting)
    data_dir = tmp_path / "datasets"
    options = {"image_size": 8, "channels": 1, "epochs": 1}  # tiny: the cache is under test, not the network
    net = features.feature_extractor("digits", data_dir=data_dir, **options)
    path = data_dir / "models" / "digit_classifier_8px_1ch_e1_s0.keras"
    assert data.networks_dir(data_dir) == data_dir / "models"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.with_suffix(".json").name])
    assert len(trained) == 1 and net.dims == 2 * 2 * 64
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines  # what it is doing before the wait, how it went after
    assert lines[0].startswith("training the digit classifier for the metric features (8x8x1, 1 epoch on ") \
        and f"cached in {path.parent})" in lines[0] and lines[0].endswith(" s on a CPU")
    assert lines[1].startswith("digit classifier trained in ") and path.name in lines[1]
    written = path.stat().st_mtime_ns

    # A new session: nothing in memory, the file on Drive. It loads, silently, and trains nothing.
    monkeypatch.setattr(evaluate, "_LOADED", {})
    monkeypatch.setattr(features, "_DIGITS", {})
    again = features.feature_extractor("digits", data_dir=data_dir, **options)
    assert again is not net and len(trained) == 1 and path.stat().st_mtime_ns == written
    assert capsys.readouterr().out == ""
    assert again.accuracy == net.accuracy
    x = data.digits(8, 1)["images"][:5]
    np.testing.assert_array_equal(again(x), net(x))  # the very same network
