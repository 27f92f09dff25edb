import numpy as np
import pytest
import torch
from torch import nn

from haltfast.errors import HaltfastError, ModelOutputError
from haltfast.sampling import BaseClassifier, LiveStreams, NoiseSampler, RecordedStreams, check_image


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
    parts = [s.sample([x], [5], [0], [13])[0], s.sample([other, x], [9, 5], [0, 13], [50, 200])[1],
             s.sample([x], [5], [213], [287])[0]]
    np.testing.assert_array_equal(whole, np.concatenate(parts))


def test_seed_and_key_change_the_noise():
    net = TinyNet()
    x = torch.rand(1, 4, 4)
    a = _sampler(net, seed=1).sample([x], [0], [0], [400])[0]
    b = _sampler(net, seed=2).sample([x], [0], [0], [400])[0]
    c = _sampler(net, seed=1).sample([x], [1], [0], [400])[0]
    assert (a != b).any() and (a != c).any()
    np.testing.assert_array_equal(a, _sampler(net, seed=1).sample([x], [0], [0], [400])[0])


@pytest.mark.parametrize("bad, match", [
    (lambda b: np.zeros((len(b), 4)), "logits of shape"),
    (lambda b: np.full((len(b), 3), np.nan), "non-finite"),
    (lambda b: np.full((len(b), 3), np.inf), "non-finite"),
    (lambda b: np.zeros(len(b) + 1, dtype=int), "returned shape"),
    (lambda b: np.full(len(b), 7), "outside"),
    (lambda b: np.full(len(b), 0.5), "non-integer"),
])
def test_bad_model_outputs_are_clear_errors(bad, match):
    with pytest.raises(ModelOutputError, match=match):
        _sampler(bad).sample([torch.rand(1, 4, 4)], [0], [0], [10])


def test_live_streams_isolate_a_failing_input():
    def model(batch):
        if (batch.reshape(len(batch), -1).mean(1) > 5).any():
            raise RuntimeError("boom")
        return np.zeros(len(batch), dtype=int)

    images = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 10.0), torch.zeros(1, 4, 4)])
    streams = LiveStreams(_sampler(model), images, [0, 1, 2])
    out, errors = streams.draw([0, 1, 2], [20, 20, 20])
    assert out[1] is None and "boom" in errors[1] and set(errors) == {1}
    assert len(out[0]) == len(out[2]) == 20
    np.testing.assert_array_equal(streams.positions, [20, 0, 20])


def test_recorded_streams_replay_and_refuse_to_overrun():
    rec = RecordedStreams([np.arange(10) % 3, np.ones(5, dtype=np.uint8)], 3)
    out, _ = rec.draw([0, 1], [4, 5])
    np.testing.assert_array_equal(out[0], [0, 1, 2, 0])
    with pytest.raises(HaltfastError, match="record longer streams"):
        rec.draw([1], [1])


@pytest.mark.parametrize("image, match", [
    (np.full((1, 4, 4), np.nan), "NaN"),
    (np.full((1, 4, 4), 2.0), "outside the expected range"),
])
def test_check_image(image, match):
    with pytest.raises(HaltfastError, match=match):
        check_image(image)
    with pytest.raises(HaltfastError, match="shape"):
        check_image(np.zeros((1, 4, 4)), shape=(1, 28, 28))


def test_sigma_must_be_positive():
    for sigma in (0.0, -1.0, float("nan")):
        with pytest.raises(HaltfastError, match="sigma"):
            NoiseSampler(BaseClassifier(TinyNet(), 3), sigma=sigma)
