"""Mixed precision: pick the Keras dtype policy for this device and wrap optimizers where needed.

``precision`` (the config's ``training.precision``, the CLI's ``--precision``) is one of

* ``"float32"`` (default): everything in float32;
* ``"mixed"``: the fast mixed policy for this device: ``mixed_float16`` on a GPU (tensor cores),
  ``mixed_bfloat16`` on a TPU or on a CPU with native bfloat16 (``avx512_bf16`` / ``amx_bf16``
  flags); on any other CPU it falls back to float32 with a warning, because there bfloat16 is
  emulated and slower than float32. The same fallback applies where oneDNN is capped below its
  bfloat16 kernels (``ONEDNN_MAX_CPU_ISA=AVX2``, how the benchmarks play an AVX2 laptop): there
  oneDNN cannot build a bfloat16 transposed convolution at all;
* ``"mixed_float16"`` / ``"mixed_bfloat16"``: that policy, whatever the device (``mixed_bfloat16``
  on a CPU under such a cap is refused with a clear error instead of failing inside oneDNN).

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

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "mixed", "mixed_float16", "mixed_bfloat16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN's ISA caps (its ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA values) below the first with bfloat16
# kernels (avx512_core_bf16): under these, a bfloat16 transposed convolution has no primitive
# (measured: "could not create a primitive descriptor" under AVX2, benchmarks/overheads.py).
ONEDNN_CAPS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                            "AVX512_CORE_VNNI")


# The CPU flags that decide which kernels TensorFlow's oneDNN runs: what a speed figure is reported with
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """Every flag this CPU reports (Linux ``/proc/cpuinfo``); None where it cannot be read or has no
    ``flags`` line (an ARM CPU lists ``Features``)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    lines = [line for line in text.splitlines() if line.startswith("flags")]
    if not lines:
        return None
    return {flag for line in lines for flag in line.split(":", 1)[-1].split()}


def speed_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The :data:`SPEED_FLAGS` this CPU has, in that order, for printing beside a speed figure:
    ``"avx2 fma avx512f avx512_bf16"``; ``"unknown"`` where the flags cannot be read."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return "unknown"
    return " ".join(f for f in SPEED_FLAGS if f in flags) or "none of " + "/".join(SPEED_FLAGS)


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """The native-bfloat16 flags this CPU reports (Linux ``/proc/cpuinfo``); [] elsewhere."""
    flags = cpu_flags(cpuinfo) or set()
    return [f for f in CPU_BF16_FLAGS if f in flags]


def onednn_isa_cap(environ=None) -> str | None:
    """The ISA cap oneDNN runs under (``ONEDNN_MAX_CPU_ISA``, or its old name ``DNNL_MAX_CPU_ISA``),
    upper-cased; None where neither is set."""
    import os

    environ = os.environ if environ is None else environ
    cap = environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap and cap.strip() else None


def cap_blocks_bf16(environ=None) -> bool:
    """True where oneDNN is capped below its bfloat16 kernels (see ``ONEDNN_CAPS_WITHOUT_BF16``)."""
    return onednn_isa_cap(environ) in ONEDNN_CAPS_WITHOUT_BF16


def device_kind() -> str:
    """``"tpu"``, ``"gpu"`` or ``"cpu"``: the fastest accelerator TensorFlow sees."""
    import tensorflow as tf

    if tf.config.list_logical_devices("TPU"):
        return "tpu"
    if tf.config.list_physical_devices("GPU"):
        return "gpu"
    return "cpu"


def policy_for(precision: str | None = "float32", device: str | None = None,
               cpu_bf16: bool | None = None, environ=None) -> str:
    """The Keras dtype policy name for ``precision`` on ``device`` (default: this machine).

    ``cpu_bf16`` overrides the CPU flag check, ``environ`` the environment the oneDNN cap is read
    from (tests use both)."""
    precision = precision or "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r} "
                         "(config['training']['precision'] or --precision)")
    if precision not in ("mixed", "mixed_bfloat16"):
        return precision
    capped = cap_blocks_bf16(environ)
    if precision == "mixed_bfloat16":
        if capped and (device or device_kind()) == "cpu":
            raise ValueError(f"precision 'mixed_bfloat16' on a CPU with oneDNN capped at "
                             f"{onednn_isa_cap(environ)} (ONEDNN_MAX_CPU_ISA): that cap has no bfloat16 "
                             "kernels and the first transposed convolution would fail inside oneDNN; "
                             "unset the variable, or use precision 'float32' or 'mixed'")
        return precision
    device = device or device_kind()
    if device == "gpu":
        return "mixed_float16"
    if device == "tpu":
        return "mixed_bfloat16"
    if capped:
        log.warning("precision='mixed' with oneDNN capped at %s (ONEDNN_MAX_CPU_ISA), below its bfloat16 "
                    "kernels: training stays float32", onednn_isa_cap(environ))
        return "float32"
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
    import keras  # here, not at the top: the CPU flag readers serve benchmarks before TensorFlow loads

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_optimizer(optimizer, policy: str):
    """``optimizer`` wrapped in a dynamic ``LossScaleOptimizer`` under ``mixed_float16``, else as is."""
    import keras

    if policy == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def compute_dtype(model) -> str:
    """The compute dtype of the model's first layer with weights (what its convolutions run in)."""
    for layer in model.layers:
        if layer.weights:
            return layer.compute_dtype
    return model.compute_dtype
