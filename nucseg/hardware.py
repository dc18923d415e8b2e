"""What the machine has: the CPU's name and feature flags, and whether Keras's backend sees a GPU.
The lowest layer (no nucseg import), so that training and inference pick their precision alike;
and whether TensorFlow, imported after nucseg, runs through oneDNN (turn_on_onednn)."""

from __future__ import annotations

import functools
import os
import platform
import sys
import warnings
from pathlib import Path

NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
# TensorFlow runs its CPU kernels through oneDNN by itself, on Linux, only where the CPU has one of
# these (DefaultOneDnnPolicy, tensorflow/core/util/port.cc); elsewhere it uses Eigen's.
TENSORFLOW_ONEDNN_FLAGS = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux's /proc/cpuinfo); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_summary() -> str:
    """The CPU's name and the flags that decide the speed of a net: for every speed figure."""
    shown = [
        f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in cpu_flags()
    ]
    return f"{cpu_name()}, {os.cpu_count()} cores, flags: {' '.join(shown) or 'unknown'}"


def native_bfloat16() -> bool:
    return any(flag in cpu_flags() for flag in NATIVE_BFLOAT16_FLAGS)


def has_avx512() -> bool:
    return any(flag.startswith("avx512") for flag in cpu_flags())


def avx2_without_avx512() -> bool:
    """The AVX2-only kind of CPU (as the AMD EPYC of issue 20): AVX2, no AVX512 of any kind."""
    return "avx2" in cpu_flags() and not has_avx512()


def usable_cores() -> int:
    """The CPUs this process may use: its affinity where the system tells it (as under a CPU limit),
    and in a Ray task no more than the CPUs the task was given, since the folds or slides beside it
    share the machine (nucseg.distributed)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = ray_task_cpus()
    return min(cores, share) if share else cores


def ray_task_cpus() -> int | None:
    """The CPUs Ray gave the task this process runs (at least 1); None outside a Ray worker (Ray not
    imported or not started, or this process is the driver)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    except AssertionError:  # Ray's answer in the driver: "only available when the process is a worker"
        return None
    return max(1, int(cpus)) if cpus else None


def tensorflow_turns_onednn_on_itself() -> bool:
    return any(flag in cpu_flags() for flag in TENSORFLOW_ONEDNN_FLAGS)


def onednn_only_if_asked() -> bool:
    """The CPUs where oneDNN is nucseg's doing: AVX2, and none of TensorFlow's own flags."""
    return "avx2" in cpu_flags() and not tensorflow_turns_onednn_on_itself()


def onednn_by_nucseg() -> bool:
    """Whether TensorFlow here runs through oneDNN because nucseg asked for it (turn_on_onednn),
    where it would not by itself."""
    return os.environ.get(ONEDNN_VARIABLE) == "1" and onednn_only_if_asked()


def turn_on_onednn(environ=os.environ, imported=sys.modules) -> None:
    """Has TensorFlow run its kernels through oneDNN on every CPU with AVX2, not only where it does
    so by itself: on a 2-core AMD EPYC with AVX2 and no AVX512 a `cpu` DIST training step took
    91-105 ms with oneDNN against 195-233 without (results/measured/speed/train_step_onednn_amd.txt,
    docs/speed.md's twenty-first round). TensorFlow reads the variable once, as it is imported; a
    value the user set wins. Other CPUs (ARM, x86 without AVX2) keep TensorFlow's default: oneDNN
    was not measured there."""
    if ONEDNN_VARIABLE in environ or "avx2" not in cpu_flags():
        return
    if "tensorflow" not in imported:
        environ[ONEDNN_VARIABLE] = "1"
    elif onednn_only_if_asked():
        warnings.warn(
            "TensorFlow was imported before nucseg, so on this CPU (AVX2, none of "
            f"{', '.join(TENSORFLOW_ONEDNN_FLAGS)}) it runs without oneDNN and trains about half as fast. "
            f"Import nucseg first, or set {ONEDNN_VARIABLE}=1 before importing TensorFlow or Keras.",
            RuntimeWarning,
            stacklevel=3,
        )


def surely_no_gpu(dev: Path = Path("/dev")) -> bool:
    """True on Linux without the device files a GPU needs: CUDA's /dev/nvidia0.., ROCm's /dev/kfd,
    WSL 2's /dev/dxg. Then TensorFlow cannot see one, and a process whose net runs in OpenVINO
    need not import it to ask (6.7 s and 0.6 GB on a 2-core AMD EPYC). Elsewhere (macOS's Metal
    plugin has no such file) nothing is sure: False."""
    if platform.system() != "Linux":
        return False
    return not (any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or (dev / "dxg").exists())


def tensorflow_sees_gpu() -> bool:
    if surely_no_gpu():
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def keras_sees_gpu() -> bool:
    """Whether the Keras backend in use (KERAS_BACKEND) has a GPU to run on."""
    import keras

    try:
        if keras.backend.backend() == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if keras.backend.backend() == "torch":
            import torch

            return torch.cuda.is_available()
        return tensorflow_sees_gpu()
    except RuntimeError:
        return False
