"""The training codes' neighbourhoods: the local outlier factor and the distance terms."""

import numpy as np
from sklearn.neighbors import NearestNeighbors


def reachability_density(distances, indices, k_distance):
    """Local reachability density of samples from their neighbours' distances and indices.

    As :class:`~sklearn.neighbors.LocalOutlierFactor` defines it: one over
    the mean reachability distance, each neighbour's distance raised to at
    least that neighbour's own ``k_distance``.
    """
    reach = np.maximum(distances, k_distance[indices])
    return 1.0 / (reach.mean(axis=1) + 1e-10)


class CodeNeighbours:
    """The ``n_neighbors`` nearest training codes of a code, and what they say of it.

    Two terms per code: its local outlier factor among the training codes,
    as ``-LocalOutlierFactor(novelty=True).score_samples`` computes it, and
    its mean distance to its ``n_neighbors`` nearest training codes. A
    training code counts itself among its neighbours, as
    ``LocalOutlierFactor.score_samples`` counts it.

    Parameters
    ----------
    train_codes : ndarray of shape (n_samples, n_components)
        The training samples' codes.

    n_neighbors : int
        Number of neighbours, less than ``n_samples``.
    """

    def __init__(self, train_codes, n_neighbors):
        self.n_neighbors = n_neighbors
        self.search = NearestNeighbors(n_neighbors=n_neighbors).fit(train_codes)
        # Each training code's neighbours other than itself, as LocalOutlierFactor's fit.
        distances, indices = self.search.kneighbors()
        self.k_distance = distances[:, -1]
        self.density = reachability_density(distances, indices, self.k_distance)

    def terms(self, codes):
        """Local outlier factor and mean neighbour distance of each code, two columns."""
        distances, indices = self.search.kneighbors(codes)
        density = reachability_density(distances, indices, self.k_distance)
        factor = (self.density[indices] / density[:, np.newaxis]).mean(axis=1)
        return np.column_stack([factor, distances.mean(axis=1)])
