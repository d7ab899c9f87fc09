"""Does this CPU run the shipped int8 ResNet as the machine its calibration was measured on did? (Issue 15.)

ONNX Runtime multiplies ``dlib_resnet_v1_int8``'s u8 activations by its s8 weights with VNNI instructions
where the CPU has them (``avx512_vnni``, ``avx_vnni``). Without VNNI (x86 AVX2 only: older Intel, AMD Zen 1-3)
its kernels add pairs of products in int16, which saturate with 8-bit weights: the same model gives other
descriptors there (cosine to a VNNI CPU's median 0.9979, min 0.971 on 60 chips: docs/benchmarks.md,
"Runtimes and session options for the int8 ResNet"), descriptors its shipped calibration does not describe
and that an index filled on a VNNI CPU does not hold. ``dlib_resnet_v1_int8r`` (7-bit weights) cannot
saturate and is the same to the bit on both, which is why new libraries get it.

Only Linux says which instructions a CPU has in a form read without a native extension (/proc/cpuinfo);
elsewhere, or on a CPU that is not x86, the answer is "unknown" and nothing is warned.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

from facesearch.models.embed.info import DLIB_RESNET_INT8_KEY

VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")
CPUINFO = Path("/proc/cpuinfo")


def has_vnni(cpuinfo: str | None, machine: str) -> bool | None:
    """True or False for an x86 CPU whose ``/proc/cpuinfo`` text is ``cpuinfo``; None when unknown (no text,
    no ``flags`` line, or a CPU that is not x86, whose int8 kernels are other code altogether)."""
    if machine.lower() not in X86_MACHINES or not cpuinfo:
        return None
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return any(flag in VNNI_FLAGS for flag in value.split())
    return None


@lru_cache(maxsize=1)
def this_cpu_has_vnni() -> bool | None:
    """:func:`has_vnni` of the CPU this process runs on (read once)."""
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        text = None
    return has_vnni(text, platform.machine())


def int8_cpu_warning(model_key: str, vnni: bool | None = None) -> str | None:
    """A warning for a library of ``dlib_resnet_v1_int8`` on a CPU known to lack VNNI (``vnni``: that CPU's
    :func:`has_vnni`, this one's when None); None for every other model, a VNNI CPU or an unknown one."""
    if model_key.split("+", 1)[0] != DLIB_RESNET_INT8_KEY:
        return None
    if (this_cpu_has_vnni() if vnni is None else vnni) is not False:
        return None
    return (
        f"this CPU has no VNNI instructions, and on such CPUs the model {DLIB_RESNET_INT8_KEY} gives other "
        "descriptors than on the CPU its shipped calibration was measured on (median cosine 0.998, worst 0.971): "
        "fmr and labels are approximate here, and faces indexed on a VNNI CPU do not compare exactly with faces "
        "indexed here; a new library (model dlib_resnet_v1_int8r, the default since this was found) gives the "
        "same descriptors on every CPU"
    )
