import pytest
import torch

from skae._network import Autoencoder, init_random


@pytest.mark.parametrize("hidden", [(), (7,)])
def test_encode_folds_the_normalisation_into_the_first_layer(hidden):
    generator = torch.Generator().manual_seed(0)
    shift = torch.randn(10, generator=generator, dtype=torch.float64)
    module = Autoencoder(10, 3, hidden, "tanh", "identity", "identity", torch.float64, shift, 2.5)
    init_random(module, generator)
    x = torch.randn(20, 10, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(module.encode(x), module.encoder(module.normalize(x)))
        reconstruction = module.decode(module.encode(x))
        expected = module.activate(module(module.normalize(x))) * 2.5 + shift
        torch.testing.assert_close(reconstruction, expected)
