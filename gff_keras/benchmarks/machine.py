import os
import platform


def machine_description() -> str:
    """The CPU model and core count, for labelling measurements.

    Returns:
        For example `"Intel(R) Xeon(R) CPU @ 2.20GHz, 2 cores"`; the
        architecture name where `/proc/cpuinfo` is unavailable.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"
