"""Autoencoders as scikit-learn transformers, trained with PyTorch."""

from skae._autoencoder import AutoencoderTransformer

__version__ = "0.1.0.dev0"

__all__ = ["AutoencoderTransformer", "__version__"]
