"""Display classes; matplotlib is imported inside ``plot``."""

from skae._plot._displays import LossCurveDisplay, ReconstructionErrorDisplay
from skae._plot._image_display import ReconstructionDisplay

__all__ = ["LossCurveDisplay", "ReconstructionDisplay", "ReconstructionErrorDisplay"]
