"""The statistics core and the replay path import and run without torch: a test in an environment whose
import system refuses torch."""

import subprocess
import sys

BLOCK_TORCH = """
import sys


class RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (this environment has no torch)")


sys.meta_path.insert(0, RefuseTorch())
"""

REPLAY = """
import numpy as np

import haltfast
import haltfast.recording
import haltfast.statistics
import haltfast.validation
from haltfast.methods import run_method
from haltfast.streams import RecordedStreams

labels = (np.random.default_rng(0).random((20, 3000)) < 0.97).astype(np.uint8)
streams = RecordedStreams(labels, 2, clean=np.ones(20, dtype=np.int64))
certs = run_method("anytime", streams, range(20), sigma=1.0, n0=0, n=0, alpha=0.001, radius=0.5, max_samples=2900)
assert all(c.decision == "certified" for c in certs), [c.decision for c in certs]
assert haltfast.statistics.log_beta_mixture_evalue(960, 1000, 0.9, 1.0, 1.0) > 23
assert "torch" not in sys.modules
try:
    haltfast.Smooth
except ModuleNotFoundError as exc:
    assert "torch" in str(exc)
else:
    raise AssertionError("Smooth imported without torch")
print("ok")
"""


def test_statistics_recording_and_replays_work_without_torch():
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH + REPLAY], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
