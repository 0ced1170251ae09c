"""Codes in and out: encoding, decoding, and the reconstruction error as a score.

:class:`CodesMixin` gives :class:`~skae.AutoencoderTransformer` the
methods of a transformer that reduces dimensions, as scikit-learn's
``_BasePCA`` gives them to PCA's family: ``transform``,
``inverse_transform``, ``score_samples`` and ``score``.
"""

import numpy as np
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from skae._nn._batches import decode, encode
from skae._nn._threads import torch_threads


class CodesMixin(TransformerMixin):
    """Encoding, decoding and scoring for a fitted autoencoder of the family.

    A :class:`~sklearn.base.TransformerMixin`, so that ``set_output`` wraps
    the ``transform`` defined here.
    """

    def transform(self, X):
        """Encode X into codes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        X_new : ndarray of shape (n_samples, `n_components_`)
            The codes, in the dtype of X (float64 for other dtypes).
        """
        X = self._validate_for_inference(X)
        with torch_threads(self._work(X)):
            return encode(self.module_, X)

    def inverse_transform(self, X):
        """Decode codes into reconstructions of the input.

        Parameters
        ----------
        X : array-like of shape (n_samples, `n_components_`)
            Codes, such as those returned by :meth:`transform`.

        Returns
        -------
        X_original : ndarray of shape (n_samples, `n_features_in_`)
            The reconstructions.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=(np.float64, np.float32), order="C")
        if X.shape[1] != self.n_components_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {self.__class__.__name__} "
                f"decodes codes of {self.n_components_} features."
            )
        with torch_threads(self._work(X)):
            return decode(self.module_, X)

    def score_samples(self, X):
        """Negative mean squared reconstruction error of each sample.

        Samples the autoencoder reconstructs badly score low, which makes
        this an anomaly score.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Negative mean squared error over the features of each sample.
        """
        X = self._validate_for_inference(X)
        return -self._reconstruction_error(X)

    def score(self, X, y=None):
        """Negative mean squared reconstruction error over all of X.

        Higher is better, so that model selection tools can maximise it.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The data.

        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        score : float
            Negative mean squared reconstruction error.
        """
        return float(np.mean(self.score_samples(X)))

    @property
    def _n_features_out(self):
        """Number of transformed output features."""
        return self.n_components_
