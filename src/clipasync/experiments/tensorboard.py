"""Live TensorBoard scalars of a run (``outputs: {tensorboard: true}``; off by default).

Each run writes ``<out>/tensorboard/<run_id>/events.out.tfevents.*`` as it goes, so
``tensorboard --logdir <out>/tensorboard`` shows the runs of an experiment side by
side while they run. At every evaluation of the engine (``eval_every``):

* ``metric/<name>``: each evaluated metric (``loss``, ``accuracy``, ...);
* ``delay/p50``, ``delay/p90``, ``delay/p99``, ``delay/max``: quantiles of the delay
  (version at arrival − version of the job's model) of the updates applied since
  the previous evaluation;
* ``clip/fraction``: the fraction of those updates that were clipped (the paper's
  clipping activity, arXiv 2606.13287 §5; absent for methods that never clip);
* ``updates/applied``, ``updates/discarded``, ``updates/skipped``: totals so far.

The step of every scalar is the server version k (applied updates) and its
timestamp is the run's time in time units, so TensorBoard's "relative" axis reads
simulated time. The writer is ``torch.utils.tensorboard`` (needs the
``tensorboard`` package: ``pip install 'clipasync[tensorboard]'``).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from clipasync.errors import ConfigError
from clipasync.recorder import Recorder

TENSORBOARD_DIR = "tensorboard"
_INSTALL_HINT = (
    "outputs.tensorboard needs the tensorboard package: "
    "pip install 'clipasync[tensorboard]'"
)


def summary_writer(folder: Path) -> Any:
    """Return a ``SummaryWriter`` on ``folder``, or raise the install hint."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(_INSTALL_HINT) from None
    return SummaryWriter(log_dir=str(folder))


class LiveScalars:
    """Writes a run's scalars at each evaluation (see the module docstring).

    Args:
        folder: The run's event folder (emptied first: a rerun of a killed run
            starts its curves over instead of doubling them).
    """

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        self._writer = summary_writer(folder)
        self._seen = 0
        self._totals = {"applied": 0, "discarded": 0, "skipped": 0}

    def update(self, recorder: Recorder) -> None:
        """Write the scalars of the latest evaluation row of ``recorder``."""
        row = recorder.evals[-1]
        step, t = int(row["version"]), float(row["time"])
        add = self._writer.add_scalar
        for key, value in row.items():
            if key not in ("time", "version", "arrivals"):
                add(f"metric/{key}", float(value), step, walltime=t)
        cols = recorder.arrivals
        window = slice(self._seen, len(cols["time"]))
        self._seen = window.stop
        applied = np.asarray(cols["applied"][window], dtype=bool)
        for key in self._totals:
            self._totals[key] += int(np.count_nonzero(cols[key][window]))
            add(f"updates/{key}", self._totals[key], step, walltime=t)
        delays = np.asarray(cols["delay"][window], dtype=np.float64)[applied]
        if delays.size:
            for q in (50, 90, 99):
                add(f"delay/p{q}", float(np.percentile(delays, q)), step, walltime=t)
            add("delay/max", float(delays.max()), step, walltime=t)
        clipped = np.asarray(cols["clipped"][window], dtype=np.float64)[applied]
        clipped = clipped[~np.isnan(clipped)]
        if clipped.size:
            add("clip/fraction", float(clipped.mean()), step, walltime=t)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
