"""What `tensorboard --logdir model_data` shows, read back from the event files and through
TensorBoard's own backend: one TensorBoard run per training run, the "losses" chart of each model,
the HParams session once per run with its trial named <experiment>/<run>, the hyperparameters that
differ first and the headline figures (the learning check) first among the metrics."""

import json

import pytest
from tensorboard.plugins.hparams import metadata as hp_metadata

from ganhelpers import evaluate, summaries
from ganhelpers.callbacks import read_loss_csv
from ganhelpers.run import model_kind, train

LOSS_CHARTS = {  # model -> the tags of its "losses" chart
    "dcgan": ["losses/d_loss_real", "losses/d_loss_fake", "losses/g_loss"],
    "wgan": ["losses/critic_loss", "losses/generator_loss", "wasserstein/estimate"],
    "wgan-gp": ["losses/critic_loss", "losses/generator_loss", "losses/gradient_penalty", "wasserstein/estimate"],
    "sgan": ["losses/d_loss_sup", "losses/d_loss_unsup", "losses/g_loss"],
    "pggan": ["losses/d_loss", "losses/g_loss", "losses/gradient_penalty", "losses/drift", "wasserstein/estimate"],
}


@pytest.mark.parametrize("name", list(LOSS_CHARTS))
def test_the_losses_chart_holds_each_models_d_and_g_losses(name):
    model = model_kind(name).build(model_kind(name).config("smoke"))
    layout = summaries.layout(model, name)
    assert [c.title for c in layout.category] == ["losses"]
    [chart] = layout.category[0].chart
    assert chart.title == f"losses ({name})"
    assert list(chart.multiline.tag) == [f"^{t}$" for t in LOSS_CHARTS[name]]


def _sessions(run):
    return [hp_metadata.parse_session_start_info_plugin_data(v.metadata.plugin_data.content)
            for v in summaries._tagged(run, summaries.HPARAMS_TAG)]


def _tensorboard(root):
    """TensorBoard's backend over ``root``: its run names, the HParams tab's experiment and the Custom
    Scalars tab's layout (merged over the runs)."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.custom_scalar import custom_scalars_plugin
    from tensorboard.plugins.hparams import backend_context

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(root))
    mux.Reload()
    tb = base_plugin.TBContext(logdir=str(root), multiplexer=mux,
                               data_provider=data_provider.MultiplexerDataProvider(mux, str(root)))
    hparams, ctx = backend_context.Context(tb), context.RequestContext()
    experiment = hparams.experiment_from_metadata(ctx, "", True, hparams.hparams_metadata(ctx, ""),
                                                  hparams.hparams_from_data_provider(ctx, "", limit=None))
    layout = json.loads(custom_scalars_plugin.CustomScalarsPlugin(tb).layout_impl(ctx, ""))
    return sorted(mux.Runs()), experiment, layout


def test_a_run_is_one_tensorboard_run_with_its_losses_chart_hparams_and_learning_check(model_data):
    config = model_kind("dcgan").config("smoke")
    config["training"]["log_every"] = 2
    train(config, "a", root=model_data, steps=4, verbose=0)
    model, run, results = train(config, "a", root=model_data, steps=8, verbose=0)  # a resume
    check = evaluate.learning_check(model, run=run)
    other = dict(config, training=dict(config["training"], d_lr=1e-4))
    model_b, run_b, _ = train(other, "b", root=model_data, steps=4, verbose=0)
    evaluate.learning_check(model_b, run=run_b)

    # results.json holds the learning check as printed, at the run's final step
    saved = json.loads(run.results_path.read_text())["learning_check"]
    assert saved["summary"] == check["summary"] and saved["step"] == 8 == results["step"]
    assert f"learning check: {saved['confident_fraction']:.0%} of 500 samples" in check["summary"]
    assert f"covering {saved['classes_covered']}/10 classes" in check["summary"]

    # one folder of event files per run; the layout and the session once, across the resume
    assert {p.parent for p in run.dir.rglob("events.out.tfevents.*")} == {run.logs}
    [layout] = summaries.read_layout(run.logs)
    assert [list(c.multiline.tag) for c in layout.category[0].chart] == [[f"^{t}$" for t in LOSS_CHARTS["dcgan"]]]
    [session] = _sessions(run)
    assert session.group_name == "dcgan_smoke/a" and session.hparams["training.d_lr"].number_value == 2e-4
    assert [s.group_name for s in _sessions(run_b)] == ["dcgan_smoke/b"]

    # every promised tag, with its number of points; the learning check at the final step
    tags = summaries.read_scalars(run.logs)
    rows = read_loss_csv(run.samples / "losses.csv")
    assert list(rows["step"]) == [2, 4, 6, 8]
    for tag in LOSS_CHARTS["dcgan"] + ["accuracy/d_acc_real", "accuracy/d_acc_fake", "learning_rate/generator"]:
        assert [s for s, _ in tags[tag]] == [2, 4, 6, 8], tag
    assert not [t for t in tags if t.startswith("epoch/")]
    assert tags["Headline/learning_check"] == [(8, pytest.approx(saved["confident_fraction"]))]
    assert tags["Headline/learning_check_classes"] == [(8, saved["classes_covered"])]
    assert [s for s, _ in tags["results/images_seen"]] == [4, 8]  # at the end of each session

    # what TensorBoard lists: a run each, the differing hyperparameter first, the headline first
    runs, experiment, layout = _tensorboard(model_data)
    assert runs == ["dcgan_smoke/a/logs", "dcgan_smoke/b/logs"]
    assert layout == {"version": 0, "category": [{"title": "losses", "closed": False, "chart": [  # both runs
        {"title": "losses (dcgan)", "multiline": {"tag": [f"^{t}$" for t in LOSS_CHARTS["dcgan"]]}}]}]}
    differing = [h.name for h in experiment.hparam_infos if h.differs]
    assert differing == ["training.d_lr"] and experiment.hparam_infos[0].name == "training.d_lr"
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert metrics[:2] == ["Headline/learning_check", "Headline/learning_check_classes"]
    assert set(metrics) == set(tags)


def test_a_resume_with_a_changed_config_replaces_the_hparams_session(model_data):
    config = model_kind("dcgan").config("smoke")
    run = train(config, "lr", root=model_data, steps=2, verbose=0).run
    changed = dict(config, training=dict(config["training"], g_lr=1e-4))  # allowed on resume
    train(changed, "lr", root=model_data, steps=4, verbose=0)
    [session] = _sessions(run)  # TensorBoard reads a run's first session only: the old one is gone
    assert session.hparams["training.g_lr"].number_value == 1e-4
    assert len(summaries.read_layout(run.logs)) == 1
