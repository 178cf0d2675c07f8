"""Multi-device training: several GPUs (``MirroredStrategy``), a Colab TPU (``TPUStrategy``), or a
CPU split into logical devices to try it all on a laptop.

The recipe (Keras 3 ``fit`` with the GANs' own ``train_step``)::

    strategy = distribute.make_strategy("auto")       # TPU, several GPUs, or the default strategy
    run.train(config, "two", strategy=strategy)       # builds in strategy.scope(): variables (and the
                                                      # RNG) per replica; global batch = config batch size

``GAN.fit`` calls ``GAN.prepare_distributed`` (mark built, create optimizer slots in the scope: without
them Keras 3 fails with "You must feed a value for placeholder tensor"), and ``GAN._apply`` divides
each replica's gradients by the number of replicas, so the summed update equals the single-device
update on the same global batch (``tf.nn.compute_average_loss``'s sum / global batch).

What differs from one device, and what is done about it:

* BatchNorm normalises with each replica's own statistics (batch / replicas images) unless the
  layers are synchronised. The networks here are built with synchronised BatchNorm whenever they are
  built under several replicas (:func:`several_replicas`; ``layers.batch_norm``): the papers'
  BatchNorm (DCGAN, WGAN's DCGAN critic, SGAN's generator) normalises over the whole minibatch;
* noise: every replica draws the values of the global batch from one shared seed and keeps its own
  share (:func:`replica_share`; ``GANBase.normal``/``uniform`` for the model's RNG,
  ``layers.GaussianNoise``/``Dropout`` for the layers' own noise). The replicas' noise is independent
  (each gets other rows of one draw) and equals one device's draw on the same global batch (for
  the model's RNG: one device's with ``global_draws=True``, which draws the same way), so a step on N
  replicas can be compared with a step on one device (``tests/test_distributed.py``).
  Two things make this necessary: a ``tf.random.Generator`` created in the scope gives each replica
  its own stream, which cannot be compared with one device, and Keras' ``GaussianNoise`` and
  ``Dropout`` draw the *same* noise on every replica (measured on TF 2.21 / Keras 3.15: their seed
  state is one mirrored variable), which correlates the replicas' halves of the batch.

One thing stays per replica by design: PGGAN's minibatch standard deviation is computed over groups
of each replica's share, as in the authors' multi-GPU code (each GPU's ``minibatch // num_gpus``).
"""

from __future__ import annotations

import json
import logging
import os

import tensorflow as tf

log = logging.getLogger(__name__)


def split_cpu(n: int = 2) -> list[str]:
    """Split the first CPU into ``n`` logical devices (call before TensorFlow runs anything);
    returns their names for ``MirroredStrategy(devices)``."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) == n:
        return [d.name for d in tf.config.list_logical_devices("CPU")]  # split so already (a second call)
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError as e:
        raise RuntimeError(f"split_cpu({n}) must run before TensorFlow initialises its devices (first "
                           f"op or device query); call it at the top of the script/process: {e}") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


STRATEGIES = ("default", "mirrored", "tpu", "multiworker", "auto")


def strategy_name(strategy) -> str:
    """``MirroredStrategy``, ``TPUStrategy``, ...; ``default`` for TensorFlow's one-device strategy
    (what results.json and the HParams record)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "MultiWorkerMirroredStrategy"  # its class is CollectiveAllReduceStrategy
    name = type(strategy).__name__
    return "default" if name == "_DefaultDistributionStrategy" else name


def _tpu_strategy() -> tf.distribute.TPUStrategy:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise RuntimeError(f"no TPU found ({e}); on Colab pick Runtime > Change runtime type > TPU") from e


def several_replicas() -> bool:
    """True where the current strategy (the scope a model is built in) has more than one replica."""
    return tf.distribute.get_strategy().num_replicas_in_sync > 1


def replica_share():
    """``(replica id, replicas)`` inside a replicated step of a strategy with several replicas (the
    place where a draw must be shared, see the module's docstring); ``None`` elsewhere: one device,
    or outside a step (sampling, evaluation)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return None
    return ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync


def shared_draw(draw, shape, share):
    """This replica's rows of ``draw(global shape)``: ``shape``'s first dimension is the replica's
    share of a batch, ``share`` is ``(replica id, replicas)``; every replica must call it with the same
    shared seed inside ``draw`` (a mirrored seed state) so that the rows fit together."""
    r, count = share
    shape = tf.cast(tf.stack(shape) if isinstance(shape, (tuple, list)) else shape, tf.int32)
    n = shape[0]
    values = draw(tf.concat([[n * count], shape[1:]], axis=0))
    return values[r * n:(r + 1) * n]


def global_batch_mean(x):
    """The mean over the first (batch) axis of the global batch: under several replicas this replica's
    mean, all-reduced over the replicas (equal shares). For a loss that is not a mean of per-example
    terms (SGAN's feature matching: a distance between two batch means). Differentiable: the gradient
    of the all-reduce is the all-reduce of the gradients, so each replica's gradient of the (global)
    loss is the replicas' number times its own part of it, which ``GANBase._apply``'s division by
    the number of replicas turns into the one-device gradient when the optimizer sums the replicas'."""
    mean = tf.reduce_mean(x, axis=0)
    share = replica_share()
    if share is None:
        return mean
    return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, mean) / share[1]


def multi_worker(strategy=None) -> bool:
    """True under a ``MultiWorkerMirroredStrategy`` whose cluster has more than one worker."""
    strategy = strategy or tf.distribute.get_strategy()
    in_mode = getattr(strategy.extended, "_in_multi_worker_mode", None)
    return bool(in_mode and in_mode())


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run folder: always on one machine; under several workers the
    ``chief`` task, or worker 0 when the cluster names no chief (TensorFlow's own convention)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    kind, index = resolver.task_type, resolver.task_id
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in resolver.cluster_spec().as_dict())


def worker_name(strategy=None) -> str:
    """``worker 1`` / ``chief 0`` under several workers, ``this process`` otherwise (for messages)."""
    strategy = strategy or tf.distribute.get_strategy()
    if not multi_worker(strategy):
        return "this process"
    return f"{strategy.cluster_resolver.task_type} {strategy.cluster_resolver.task_id}"


def read_tf_config(text: str | None = None) -> dict:
    """``TF_CONFIG`` (the JSON every worker of a multi-worker run is started with), checked: a
    ``cluster`` of ``worker`` (and optionally ``chief``) address lists and this process's ``task``
    (``type`` and ``index`` within its list). Raises ``ValueError`` saying what is wrong."""
    text = os.environ.get("TF_CONFIG") if text is None else text
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise ValueError(f"--strategy multiworker needs TF_CONFIG in the environment of every worker, e.g. {example} "
                         "(index 1 on the second machine)")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not JSON ({e}): expected {example}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(f"TF_CONFIG has no cluster.worker list of host:port addresses: expected {example}")
    for role, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and ":" in a for a in addresses):
            raise ValueError(f"TF_CONFIG cluster.{role} must be a list of 'host:port' strings, got {addresses!r}")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(f"TF_CONFIG task.type must name one of the cluster's roles ({', '.join(cluster)}), "
                         f"got {task!r}")
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task["type"]]):
        raise ValueError(f"TF_CONFIG task.index must be 0..{len(cluster[task['type']]) - 1} (the {task['type']} "
                         f"list has {len(cluster[task['type']])}), got {index!r}")
    return config


def _multiworker_strategy(devices: int | None) -> tf.distribute.MultiWorkerMirroredStrategy:
    config = read_tf_config()
    gpus = tf.config.list_physical_devices("GPU")
    if devices and devices > 1 and not gpus:
        raise ValueError(f"--strategy multiworker trains one replica per worker on a CPU, not devices={devices}: "
                         "start more workers instead")
    workers = sum(len(v) for v in config["cluster"].values())
    log.info("MultiWorkerMirroredStrategy: %s %d of %d workers", config["task"]["type"], config["task"]["index"],
             workers)
    return tf.distribute.MultiWorkerMirroredStrategy()


def make_strategy(kind: str | None = None, devices: int | None = None) -> tf.distribute.Strategy:
    """The one place a strategy is made: ``python -m ganhelpers train --strategy KIND --devices N``,
    the notebooks' ``DEVICES``, and code. ``mirrored``: over the first ``devices`` GPUs (default:
    all), or, on a machine without GPUs, over ``devices`` logical CPU devices (to try it on a laptop:
    no faster, the same arithmetic); ``tpu``: a Colab TPU (untested on hardware here); ``default``:
    one device; ``multiworker``: several machines (or processes), each started with the same
    command and its own ``TF_CONFIG`` (see :func:`read_tf_config`), one replica per worker on a CPU,
    each worker's GPUs where it has them; ``auto``: a TPU if there is one, else mirrored over 2+ GPUs, else one device.
    ``kind=None`` means ``mirrored`` when ``devices`` > 1, else ``default``. Call it before
    TensorFlow runs anything (logical devices are fixed at its first operation)."""
    if devices is not None and (not isinstance(devices, int) or isinstance(devices, bool) or devices < 1):
        raise ValueError(f"devices must be a whole number >= 1, got {devices!r}")
    kind = kind or ("mirrored" if devices and devices > 1 else "default")
    if kind not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {kind!r}")
    if kind == "auto":
        try:
            return _tpu_strategy()
        except RuntimeError:
            gpus = len(tf.config.list_physical_devices("GPU"))
            kind = "mirrored" if (devices or gpus) > 1 else "default"
    if kind == "default":
        if devices and devices > 1:
            raise ValueError(f"the default strategy trains on one device, not {devices}: use --strategy mirrored")
        return tf.distribute.get_strategy()
    if kind == "tpu":
        return _tpu_strategy()
    if kind == "multiworker":
        return _multiworker_strategy(devices)
    gpus = tf.config.list_physical_devices("GPU")
    n = devices or max(1, len(gpus))
    if gpus:
        if n > len(gpus):
            raise ValueError(f"devices={n} but this machine has {len(gpus)} GPU(s)")
        names = [f"/gpu:{i}" for i in range(n)]
    else:
        names = split_cpu(n)[:n]
    log.info("MirroredStrategy over %d %s: %s", n, "GPUs" if gpus else "logical CPU devices", ", ".join(names))
    return tf.distribute.MirroredStrategy(names)


def per_replica_slices(strategy_: tf.distribute.Strategy, *tensors):
    """Split host tensors along the batch axis into equal per-replica shares (replica i gets the
    i-th share), as ``experimental_distribute_dataset`` splits a global batch."""
    r = strategy_.num_replicas_in_sync

    def share(ctx, t):
        n = t.shape[0] // r
        return t[ctx.replica_id_in_sync_group * n:(ctx.replica_id_in_sync_group + 1) * n]

    for t in tensors:
        if t.shape[0] % r:
            raise ValueError(f"batch of {t.shape[0]} does not split into {r} equal replica shares")
    return tuple(strategy_.experimental_distribute_values_from_function(lambda ctx, t=t: share(ctx, t))
                 for t in tensors)
