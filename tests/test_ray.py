"""The Ray path on a local 2-worker cluster gives the single-process certificates exactly."""

import numpy as np
import pandas as pd
import pytest

from haltfast.cli import main
from haltfast.data import load_dataset
from haltfast.models import load_model
from haltfast.results import journal_path

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _frame(path):
    return pd.read_csv(path).drop(columns="seconds")


@pytest.mark.slow
def test_two_ray_workers_give_the_single_process_certificates(cluster, tmp_path, capsys, certify_digits):
    options = ["--max-samples", "1000"]  # radius mode; decision mode below

    def certify(out, n, *extra):
        return main(
            certify_digits("--skip", "3", "--max", str(n), "--quiet", *options, "--out", str(tmp_path / out), *extra)
        )

    assert certify("single.csv", 14) == 0
    assert certify("ray.csv", 14, "--workers", "2") == 0
    assert "2 Ray workers" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_frame(tmp_path / "single.csv"), _frame(tmp_path / "ray.csv"))
    # Ray finishes what a single process started
    assert certify("partial.csv", 5) == 0
    assert certify("partial.csv", 14, "--workers", "2") == 0
    assert "5 of 14 inputs already finished" in capsys.readouterr().err
    pd.testing.assert_frame_equal(_frame(tmp_path / "single.csv"), _frame(tmp_path / "partial.csv"))
    assert len(journal_path(tmp_path / "partial.csv").read_text().splitlines()) == 1 + 14


@pytest.mark.slow
def test_chunking_does_not_change_certificates(cluster, digits_model):
    from haltfast.distributed import RayPool
    from haltfast.distributed import WorkerSpec
    from haltfast.smooth import Smooth

    data = load_dataset("digits", "test").subset(5, 9)
    model, _ = load_model(digits_model)
    options = {"radius": 0.2, "max_samples": 3000}
    spec = WorkerSpec(model, 10, 0.25, seed=3, batch_size=300, options=options)
    key = lambda certs: [(c.index, c.prediction, c.decision, c.radius, c.evaluations, c.log_evalue) for c in certs]
    single = Smooth(model, 10, 0.25, seed=3).certify_many(
        data.images, data.labels, method="anytime", keys=data.indices, progress=False, **options
    )
    seen = []
    with RayPool(spec, workers=2) as pool:
        assert len(set(pool.pids)) == 2
        one_by_one = pool.certify(data.images, data.labels, data.indices, chunk_size=1, on_result=seen.append)
        in_fours = pool.certify(data.images, data.labels, data.indices, chunk_size=4)
    assert key(one_by_one) == key(in_fours) == key(single)
    assert sorted(c.index for c in seen) == sorted(data.indices.tolist())
    assert np.all([c.label is not None for c in one_by_one])
