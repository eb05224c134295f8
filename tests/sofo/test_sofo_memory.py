"""O10: SOFO's extra peak memory does not grow with the trial length; Adam+BPTT's does.

Each measurement runs one iteration in its own process; the kernel's peak-RSS counter is reset
just before it (/proc/self/clear_refs), so the reading is that iteration's own peak.
"""

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import json, sys, torch
    from rnntk.sofo.optimizer import SOFO
    from rnntk.sofo.problems import KalmanProblem
    kind, T = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)
    prob = KalmanProblem(hidden=64, steps=T)
    m = prob.make_model(torch.Generator().manual_seed(0))
    b = prob.sample(32, torch.Generator().manual_seed(1))
    opt = SOFO(dict(m.named_parameters()), n_tangents=16, generator=torch.Generator().manual_seed(2)) if kind == "sofo" else torch.optim.Adam(m.parameters())
    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    open("/proc/self/clear_refs", "w").write("5")
    base = status("VmRSS")
    if kind == "sofo":
        opt.step(lambda V: prob.sketch(m, V, b))
    else:
        loss = prob.loss(m, b); loss.backward(); opt.step()
    print(json.dumps({"extra_mb": status("VmHWM") - base}))
    """
)


def extra_mb(kind: str, T: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(T)], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])["extra_mb"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc peak-RSS reset")
def test_O10_constant_memory_in_T():
    sofo = [extra_mb("sofo", T) for T in (500, 5000)]
    adam = [extra_mb("adam", T) for T in (500, 5000)]
    assert sofo[1] <= 1.3 * sofo[0] + 4.0, sofo  # + a few MB of allocator noise
    assert adam[1] >= 4.0 * adam[0], adam
    assert adam[1] > 5 * sofo[1]
