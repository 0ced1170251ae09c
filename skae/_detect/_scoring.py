"""The detector's scores: the three terms of a sample, and their calibration.

:class:`ScoresMixin` gives :class:`~skae.AutoencoderOutlierDetector` each
sample's reconstruction error, its code's local outlier factor and mean
distance to its nearest training codes, their robust locations and scales
on the training samples, and the score that sums their z-scores.
"""

import numpy as np
import scipy.sparse as sp

from skae._detect._neighbours import CodeNeighbours
from skae._detect._scores import offset, terms_location_scale
from skae._nn._batches import encode
from skae._nn._start import location_scale
from skae._nn._threads import torch_threads


class ScoresMixin:
    """The scores of :class:`~skae.AutoencoderOutlierDetector`.

    Reads the fitted network of the base and the calibration that
    :meth:`_calibrate` sets.
    """

    def _calibrate(self, X):
        """Keep the training codes, and the terms' locations, scales and offset on X."""
        self._train_codes = self._codes(X)
        self._code_neighbours = CodeNeighbours(self._train_codes, self.n_neighbors_)
        terms = self._terms(X, self._train_codes)
        _, data_scale = location_scale(X)
        location, scale = terms_location_scale(terms, data_scale)
        self._score_location, self._score_scale = location[:2], scale[:2]
        self._distance_location, self._distance_scale = float(location[2]), float(scale[2])
        self.offset_ = offset(self._combine(terms), self.contamination)

    def _scaled(self, X):
        """X with each feature divided by its training scale (see ``feature_scale``)."""
        scale = getattr(self, "_feature_scale", None)
        if scale is None or np.all(scale == 1):
            return X
        if sp.issparse(X):
            return X.multiply(1.0 / scale).tocsr().astype(X.dtype)
        return (X / scale).astype(X.dtype, copy=False)

    def _codes(self, X):
        with torch_threads(self._work(X)):
            return encode(self.module_, X).astype(np.float64, copy=False)

    def _neighbours(self):
        """The training codes' neighbourhoods, rebuilt from the codes when needed."""
        neighbours = self.__dict__.get("_code_neighbours")
        if neighbours is None:
            neighbours = CodeNeighbours(self._train_codes, self.n_neighbors_)
            self._code_neighbours = neighbours
        return neighbours

    def _terms(self, X, codes=None):
        """Each sample's reconstruction error, its code's local outlier factor and
        mean distance to its nearest training codes: three columns."""
        residual = self._reconstruction_error(X)
        if codes is None:
            codes = self._codes(X)
        return np.column_stack([residual, self._neighbours().terms(codes)])

    def _terms_location_scale(self):
        """The three terms' robust locations and scales on the training samples."""
        location = np.r_[self._score_location, self._distance_location]
        scale = np.r_[self._score_scale, self._distance_scale]
        return location, scale

    def _combine(self, terms):
        location, scale = self._terms_location_scale()
        return -((terms - location) / scale).sum(axis=1)

    def __getstate__(self):
        state = super().__getstate__()
        # The neighbourhoods are rebuilt from the training codes.
        state.pop("_code_neighbours", None)
        return state
