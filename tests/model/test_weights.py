"""Weights files: round trip, and refusal of pickles and altered files."""

import pytest
import torch

from imagemend.model.core.net import ImagemendNet
from imagemend.model.core.weights import DEFAULT_WEIGHTS, WeightsError, load_weights, save_weights


def test_round_trip_keeps_every_tensor_and_the_info(tmp_path):
    torch.manual_seed(3)
    net = ImagemendNet()
    digest = save_weights(tmp_path / "w.safetensors", net, {"steps": 5})
    back, meta = load_weights(tmp_path / "w.safetensors")
    assert meta["sha256"] == digest and meta["info"] == {"steps": 5}
    for (k, a), (k2, b) in zip(net.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_altered_weights_are_rejected(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, ImagemendNet())
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum"):
        load_weights(path)


def test_altered_metadata_is_rejected(tmp_path):
    """The calibrated thresholds live in the metadata: changing them must change the checksum."""
    path = tmp_path / "w.safetensors"
    save_weights(path, ImagemendNet(), {"thresholds": {"min_noise_sigma": 1.5}})
    data = path.read_bytes()
    altered = data.replace(b'min_noise_sigma\\": 1.5', b'min_noise_sigma\\": 9.5')
    assert altered != data and len(altered) == len(data)
    path.write_bytes(altered)
    with pytest.raises(WeightsError, match="checksum"):
        load_weights(path)


def test_truncated_weights_are_rejected(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(path, ImagemendNet())
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_weights(path)


def test_a_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "w.safetensors"
    torch.save({"net": ImagemendNet().state_dict(), "x": Exploit()}, path)
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_weights(path)
    assert not marker.exists()


def test_shipped_weights_load():
    net, meta = load_weights(DEFAULT_WEIGHTS)
    assert len(meta["sha256"]) == 64 and isinstance(net, ImagemendNet)
