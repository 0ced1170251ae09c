import numpy as np
import pytest
import torch

from skae._nn._contract import build_network
from skae._nn.linear import Autoencoder


def _network(hidden, dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    shift = torch.randn(10, generator=generator, dtype=dtype)
    module = Autoencoder(10, 3, hidden, "tanh", "identity", "identity", dtype)
    module.set_normalization(shift, 2.5)
    module.init_random(generator)
    return module, shift


@pytest.mark.parametrize("hidden", [(), (7,)])
def test_encode_folds_the_normalisation_into_the_first_layer(hidden):
    module, shift = _network(hidden)
    x = torch.randn(20, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(module.encode(x), module.encoder(module.normalize(x)))
        reconstruction = module.decode(module.encode(x))
        expected = module.activate(module(module.normalize(x))) * 2.5 + shift
        torch.testing.assert_close(reconstruction, expected)


@pytest.mark.parametrize("hidden", [(), (7, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_network_is_rebuilt_from_its_spec_and_arrays(hidden, dtype):
    module, _ = _network(hidden, dtype)
    arrays = module.to_arrays()
    coefs, intercepts, shift = arrays["coefs_"], arrays["intercepts_"], arrays["shift_"]
    coef_shapes, intercept_shapes = Autoencoder.array_shapes(module.spec)
    assert [c.shape for c in coefs] == coef_shapes
    assert [i.shape for i in intercepts] == intercept_shapes
    assert all(isinstance(a, np.ndarray) for a in [*coefs, *intercepts, shift])
    rebuilt = build_network(module.spec).load_arrays(arrays)
    assert rebuilt.spec == module.spec and rebuilt.dtype == dtype
    x = torch.randn(20, 10, generator=torch.Generator().manual_seed(1), dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.encode(x), module.encode(x), rtol=0, atol=0)
        torch.testing.assert_close(
            rebuilt.decode(rebuilt.encode(x)), module.decode(module.encode(x)), rtol=0, atol=0
        )
    assert (module.linear_path is None) == bool(hidden) and module.is_linear != bool(hidden)


def test_weights_of_the_wrong_shape_are_refused():
    module, _ = _network(())
    arrays = module.to_arrays()
    coefs = arrays["coefs_"]
    with pytest.raises(ValueError, match="does not fit the network"):
        module.load_arrays({**arrays, "coefs_": [coefs[0].T, coefs[1]]})
    with pytest.raises(ValueError, match="The network has 2 layers"):
        module.load_arrays({**arrays, "coefs_": coefs[:1]})
