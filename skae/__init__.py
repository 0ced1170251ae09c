"""Autoencoders as scikit-learn transformers, trained with PyTorch."""

from skae._autoencoder import AutoencoderTransformer
from skae._imputer import AutoencoderImputer
from skae._outlier import AutoencoderOutlierDetector
from skae._persistence import load, save
from skae._plot import LossCurveDisplay, ReconstructionDisplay, ReconstructionErrorDisplay
from skae._version import __version__

__all__ = [
    "AutoencoderImputer",
    "AutoencoderOutlierDetector",
    "AutoencoderTransformer",
    "LossCurveDisplay",
    "ReconstructionDisplay",
    "ReconstructionErrorDisplay",
    "__version__",
    "load",
    "save",
]
