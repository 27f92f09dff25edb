import numpy as np
import torch
from torch import nn

from haltfast.sampling import BaseClassifier
from haltfast.sampling import NoiseSampler


class TinyNet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(16, classes)

    def forward(self, x):
        return self.lin(x.flatten(1))


def _sampler(model, classes=3, seed=0, batch=64):
    return NoiseSampler(BaseClassifier(model, classes), sigma=0.5, seed=seed, batch_size=batch)


def test_module_and_callable_adapters_agree():
    net = TinyNet()
    as_logits = lambda b: net(torch.from_numpy(b)).detach().numpy()
    as_labels = lambda b: net(torch.from_numpy(b)).argmax(1).numpy()
    x = torch.rand(1, 4, 4)
    outs = [_sampler(m).sample([x], [7], [0], [300])[0] for m in (net, as_logits, as_labels)]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_stream_is_invariant_to_chunking_batching_and_neighbours():
    net = TinyNet()
    x, other = torch.rand(1, 4, 4), torch.rand(1, 4, 4)
    whole = _sampler(net, batch=1000).sample([x], [5], [0], [500])[0]
    s = _sampler(net, batch=37)
    parts = [
        s.sample([x], [5], [0], [13])[0],
        s.sample([other, x], [9, 5], [0, 13], [50, 200])[1],
        s.sample([x], [5], [213], [287])[0],
    ]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_seed_and_key_change_the_noise():
    net = TinyNet()
    x = torch.rand(1, 4, 4)
    a = _sampler(net, seed=1).sample([x], [0], [0], [400])[0]
    b = _sampler(net, seed=2).sample([x], [0], [0], [400])[0]
    c = _sampler(net, seed=1).sample([x], [1], [0], [400])[0]
    assert (a != b).any() and (a != c).any()
    np.testing.assert_array_equal(a, _sampler(net, seed=1).sample([x], [0], [0], [400])[0])


def test_finished_inputs_release_their_cached_noise():
    from haltfast.smooth import Smooth

    smooth = Smooth(TinyNet(), 3, 0.5, seed=0)
    images = [torch.rand(1, 4, 4) for _ in range(5)]
    certs = smooth.certify_many(images, method="anytime", keys=range(5), max_samples=300, progress=False)
    assert len(certs) == 5 and not smooth.sampler._cache
    again = Smooth(TinyNet(), 3, 0.5, seed=0).certify_many(
        images, method="anytime", keys=range(5), max_samples=300, progress=False, max_active=1
    )
    assert [(c.decision, c.evaluations) for c in certs] == [(c.decision, c.evaluations) for c in again]


def test_noise_cache_recycles_its_blocks_and_never_changes_a_label():
    net, rng = TinyNet(), np.random.default_rng(0)
    x = torch.rand(1, 4, 4)
    block_bytes = 32 * 16 * 4
    small = NoiseSampler(BaseClassifier(net, 3), sigma=0.5, seed=0, batch_size=50, cache_bytes=3 * block_bytes)
    none = NoiseSampler(BaseClassifier(net, 3), sigma=0.5, seed=0, batch_size=50, cache_bytes=0)
    positions, seen = dict.fromkeys(range(8), 0), {}
    for _ in range(60):
        keys = sorted(rng.choice(sorted(positions), size=min(5, len(positions)), replace=False))
        counts = rng.integers(1, 45, len(keys))
        starts = [positions[k] for k in keys]
        a = small.sample([x] * len(keys), keys, starts, counts)
        b = none.sample([x] * len(keys), keys, starts, counts)
        for k, c, la, lb in zip(keys, counts, a, b):
            np.testing.assert_array_equal(la, lb)
            positions[k] += int(c)
        blocks = [t for _, t in small._cache.values()] + small._spare
        assert len(blocks) <= 3
        seen.update((t.data_ptr(), t) for t in blocks)  # held, so no address is reused
        done = [k for k in keys if positions[k] > 150]
        small.forget(done)
        for k in done:
            del positions[k]
            positions[max(positions, default=0) + 100] = 0
    assert len(seen) <= 3  # recycled, never allocated afresh (before, 180 blocks here)
    small.forget(list(small._cache))
    assert not small._cache and not small._spare


def test_batch_shares_split_each_model_batch_by_its_samples():
    """Requests of 10, 30 and 5 samples in batches of 20 (the last holds 5): each batch's time goes to its samples."""
    from haltfast.sampling import batch_shares

    shares = batch_shares([10, 30, 5], 20, [0.2, 1.0, 0.5])
    np.testing.assert_allclose(shares, [0.1, 0.1 + 1.0, 0.5])
    np.testing.assert_allclose(batch_shares([10, 30, 5], 20, [0.2]), [0.1, 0.1, 0.0])  # a draw cut after one batch


def test_each_input_is_charged_its_own_share_of_the_batches_it_took_part_in():
    """Issue 21: the model's second batch is slow. Input 0 only takes part in the first, so its time is its share
    of that batch, not a share of the whole round by samples (which charged every input of a round alike)."""
    import time

    from haltfast.engine import Run
    from haltfast.sampling import ModelLabels
    from haltfast.streams import Streams

    calls = []

    def model(batch):
        calls.append(len(batch))
        time.sleep(0.02 if len(calls) == 1 else 0.3)
        return np.zeros(len(batch), dtype=np.int64)

    sampler = NoiseSampler(BaseClassifier(model, 2), sigma=0.5, seed=0, batch_size=20)
    streams = Streams(ModelLabels(sampler, torch.rand(2, 1, 4, 4), [0, 1]), 2)
    run = Run(streams, [0, 1])
    run.draw_flat(np.array([0, 1]), np.array([10, 30]), np.zeros(2, dtype=np.int64))
    assert calls == [20, 20]
    first, rest = run.spent
    assert first < (first + rest) / 8  # by the samples of the round it would be charged a quarter of it
