"""Peak memory of one piece of work, for benchmarks that run it in their own process.

On Linux the kernel's peak-RSS counter is reset (write 5 to /proc/self/clear_refs) so that
VmHWM afterwards is the peak of that work alone; elsewhere the lifetime ru_maxrss is used
(which underestimates the extra when setup peaked higher).
"""

from __future__ import annotations

import resource


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_rss() -> float:
    """Reset the peak counter; return the current RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _status_mb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss() -> float:
    """Peak RSS in MB since the last reset."""
    try:
        return _status_mb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
