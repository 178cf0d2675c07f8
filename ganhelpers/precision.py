"""Mixed precision: pick the Keras dtype policy for this device and wrap optimizers where needed.

``precision`` (the config's ``training.precision``, the CLI's ``--precision``) is one of

* ``"float32"`` (default): everything in float32;
* ``"mixed"``: the fast mixed policy for this device: ``mixed_float16`` on a GPU (tensor cores),
  ``mixed_bfloat16`` on a TPU or on a CPU with native bfloat16 (``avx512_bf16`` / ``amx_bf16``
  flags); on any other CPU it falls back to float32 with a warning, because there bfloat16 is
  emulated and slower than float32;
* ``"mixed_float16"`` / ``"mixed_bfloat16"``: that policy, whatever the device.

Under a mixed policy layers compute in 16 bits and keep float32 weights (Micikevicius et al. 2018);
the networks' output layers are float32 (see ``layers.py``) and every loss casts to float32
(``losses.py``). ``mixed_float16`` also needs loss scaling against gradient underflow:
:func:`wrap_optimizer` returns a ``keras.optimizers.LossScaleOptimizer`` whose ``scale_loss`` the
GAN's ``_apply`` uses. bfloat16 has float32's exponent range and needs no scaling.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import keras

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed", "mixed_float16", "mixed_bfloat16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The native-bfloat16 flags this CPU reports (Linux ``/proc/cpuinfo``); [] elsewhere."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return [f for f in CPU_BF16_FLAGS if f in flags]


def device_kind() -> str:
    """``"tpu"``, ``"gpu"`` or ``"cpu"``: the fastest accelerator TensorFlow sees."""
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    if tf.config.list_physical_devices("GPU"):
        return "gpu"
    return "cpu"


def policy_for(precision: str | None = "float32", device: str | None = None,
               cpu_bf16: bool | None = None) -> str:
    """The Keras dtype policy name for ``precision`` on ``device`` (default: this machine).

    ``cpu_bf16`` overrides the CPU flag check (tests use it)."""
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r} "
                         "(config['training']['precision'] or --precision)")
    if precision != "mixed":
        return precision
    device = device or device_kind()
    if device == "gpu":
        return "mixed_float16"
    if device == "tpu":
        return "mixed_bfloat16"
    if cpu_bf16 if cpu_bf16 is not None else bool(cpu_bf16_flags()):
        return "mixed_bfloat16"
    log.warning("precision='mixed' on a CPU without native bfloat16 (no %s flag): bfloat16 would be "
                "emulated and slower, so training stays float32; pass 'mixed_bfloat16' to force it",
                " / ".join(CPU_BF16_FLAGS))
    return "float32"


@contextlib.contextmanager
def policy_scope(policy: str):
    """Build layers under the global dtype ``policy``; the previous global policy is restored after.

    Layers keep the policy they were built with, so models built inside mix with float32 code outside."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_optimizer(optimizer, policy: str):
    """``optimizer`` wrapped in a dynamic ``LossScaleOptimizer`` under ``mixed_float16``, else as is."""
    if policy == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def compute_dtype(model: keras.Model) -> str:
    """The compute dtype of the model's first layer with weights (what its convolutions run in)."""
    for layer in model.layers:
        if layer.weights:
            return layer.compute_dtype
    return model.compute_dtype
