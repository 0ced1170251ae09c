"""The ONNX graph of the detector's scores, written through :mod:`skae.onnx`'s writer.

Codes and reconstruction come from the normalised input, the scores'
terms in float64: the reconstruction error, the local outlier factor of
the code among the training codes, as
:class:`~sklearn.neighbors.LocalOutlierFactor` computes it, and the code's
mean distance to its nearest training codes.
"""

import numpy as np


def detector_scores(graph, detector, network, inner, x):
    """``decision_function`` and ``score_samples`` of each row of ``x``, (N, 1) float64 columns.

    ``network`` is the detector's fitted network, ``inner`` the same with
    an identity normalisation (its layers as ``forward`` applies them).
    """
    F = np.float64
    feature_scale = getattr(detector, "_feature_scale", None)
    if feature_scale is not None and np.any(feature_scale != 1):
        # Each feature divided by its training spread, as the detector does.
        x = graph.node("Div", x, graph.constant(feature_scale, "feature_scale"))
    # Codes and reconstruction from the normalised input: (x - shift) / scale
    # keeps float32 precise where the data lie far from zero.
    shift, scale = network.arrays["shift_"], network.arrays["scale_"]
    normalized = graph.node(
        "Div", graph.node("Sub", x, graph.constant(shift, "shift")), graph.constant(scale)
    )
    codes = inner.encode(graph, normalized)
    error = graph.node("Sub", inner.decode(graph, codes), normalized)
    n_features = network.spec["n_features"]
    mean = graph.constant(np.full((n_features, 1), float(scale) ** 2 / n_features), "mse")
    residual = graph.cast(graph.node("MatMul", graph.node("Mul", error, error), mean), F)
    neighbours = detector._neighbours()
    factor, distance = neighbour_terms(
        graph,
        graph.cast(codes, F),
        detector._train_codes,
        neighbours.n_neighbors,
        neighbours.k_distance,
        neighbours.density,
    )
    terms = graph.node("Concat", residual, factor, distance, axis=1)
    term_location, term_scale = detector._terms_location_scale()
    location = graph.constant(term_location, "score_location", dtype=F)
    scale = graph.constant(-1 / term_scale, "score_scale", dtype=F)
    scores = graph.node("MatMul", graph.node("Sub", terms, location), scale)
    decision = graph.node("Sub", scores, graph.constant(detector.offset_, "offset", dtype=F))
    return decision, scores


def neighbour_terms(graph, codes, train_codes, n_neighbors, k_distance, lrd):
    """Local outlier factor and mean neighbour distance of ``codes`` among ``train_codes``.

    The factor as :meth:`sklearn.neighbors.LocalOutlierFactor.score_samples`
    computes it, negated, from each training code's distance to its
    ``n_neighbors``-th neighbour, ``k_distance``, and its local reachability
    density, ``lrd``; the distance as the mean of the ``n_neighbors``
    nearest. Distances come from their expansion, in float64 exact to about
    1e-8 of the codes' norms. Returns two (N, 1) float64 columns.
    """
    float64 = np.float64
    nearest, indices = graph.nearest(
        codes, train_codes, n_neighbors, name="train_codes", purpose="the local outlier factor"
    )
    k_distance = graph.constant(k_distance, "k_distance", dtype=float64)
    reach = graph.node("Max", nearest, graph.node("Gather", k_distance, indices))
    mean = graph.constant(np.full((n_neighbors, 1), 1.0 / n_neighbors), "mean", dtype=float64)
    # The training codes' densities divided by the code's own: 1 / (mean reach + 1e-10).
    reach = graph.node(
        "Add", graph.node("MatMul", reach, mean), graph.constant(1e-10, dtype=float64)
    )
    ratios = graph.node(
        "Mul", graph.node("Gather", graph.constant(lrd, "lrd", dtype=float64), indices), reach
    )
    return graph.node("MatMul", ratios, mean), graph.node("MatMul", nearest, mean)
