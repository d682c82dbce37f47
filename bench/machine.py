"""Machine information recorded beside every benchmark result (these machines are noisy and differ)."""

import os
import platform
import time


def machine_info():
    """Returns a dict describing the CPU, memory, load and library versions at the time of the run."""
    import keras
    import numpy as np
    import tensorflow as tf

    flags, model, family = set(), platform.processor(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key = line.split(":", 1)[0].strip()
                if key == "flags" and not flags:
                    flags = set(line.split(":", 1)[1].split())
                elif key == "model name":
                    model = line.split(":", 1)[1].strip()
                elif key in ("cpu family", "model") and key not in family:
                    family[key] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    # A virtual machine's model name may be just "AMD EPYC": the family tells the generation
    # (AMD family 25 = Zen 3/4, 26 = Zen 5).
    if family:
        model = (f"{model} (family {family.get('cpu family', '?')}, "
                 f"model {family.get('model', '?')})")
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": model,
        "cores": os.cpu_count(),
        "cpu_flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16",
                                     "amx_tile", "amx_int8", "fma"}),
        "memory_gib": round(mem_gib, 1),
        "load_average_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(machine_info(), indent=2))
