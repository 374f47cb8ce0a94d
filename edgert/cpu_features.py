"""Why int8 may run slower than fp32 on this CPU: the instructions it has, read from
/proc/cpuinfo, and what each engine's int8 kernels need. ``edgert bench`` prints the
line ``int8_speed_note`` returns for a quantized model.

The facts behind the sentences: an int8 dot product on x86 without VNNI takes three
instructions (vpmaddubsw, vpmaddwd, vpaddd) where fp32 takes one FMA, so int8 gains
only from memory traffic; AVX-512 VNNI / AVX-VNNI (vpdpbusd) make it one. On ARM the
dot-product extension (``asimddp``, SDOT) and I8MM play that role. MNN's CPU backend
prints what it found ("The device supports: i8sdot, fp16, i8mm" - ARM features): its
int8 kernels are tuned for them, and its x86 int8 path is plain AVX2 unless the wheel
was built with its AVX-512 kernels. A weights-only int8 model dequantizes its weights to
float: it is smaller, not faster.
"""
from __future__ import annotations

import platform
from typing import Mapping, Optional, Set


def cpu_flags(cpuinfo: Optional[str] = None) -> Set[str]:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``); empty when unknown."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def int8_speed_note(engine: str, details: Mapping[str, object],
                    machine: Optional[str] = None, flags: Optional[Set[str]] = None
                    ) -> Optional[str]:
    """A sentence on why int8 may be slower than fp32 here, for a quantized model
    (``details``: ``Session.file_details``); None for a float model."""
    if not details.get("quantized"):
        return None
    quant = details.get("quantization") or {}
    if isinstance(quant, Mapping) and quant.get("activations") == "float":
        return ("int8 weights only: they are dequantized to float before the arithmetic, "
                "so this model is smaller than fp32 but not faster")
    machine = (machine or platform.machine()).lower()
    flags = cpu_flags() if flags is None else flags
    if machine in ("x86_64", "amd64", "i686", "x86"):
        vnni = sorted(flags & {"avx512_vnni", "avx_vnni"})
        if not vnni:
            return ("int8 may be slower than fp32 on this CPU: it has no AVX-512 VNNI or "
                    "AVX-VNNI, so each int8 dot product takes three instructions where fp32 "
                    "takes one FMA")
        if engine == "mnn":
            return (f"this CPU has {'/'.join(vnni)}, but MNN's int8 kernels are tuned for "
                    "ARM (SDOT/I8MM) and its x86 int8 path is AVX2 in the prebuilt wheel: "
                    "fp32 is often faster here")
        return (f"this CPU has {'/'.join(vnni)}: int8 is fast where XNNPACK runs it; ops it "
                "does not take run in TFLite's builtin int8 kernels (tuned for ARM), which "
                "can make int8 slower than fp32 here")
    if machine in ("aarch64", "arm64") or machine.startswith("arm"):
        if "asimddp" not in flags:
            return ("int8 may be slower than fp32 on this CPU: it lacks the ARM dot-product "
                    "instructions (asimddp/SDOT) that int8 kernels rely on")
    return None
