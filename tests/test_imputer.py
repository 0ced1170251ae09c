"""Tests of AutoencoderImputer: the imputer contract, quality and bad input."""

import io
import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.impute import KNNImputer, MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

import skae._impute._gaussian
from skae import AutoencoderImputer, load, save
from skae._impute._gaussian import gaussian_model
from skae._impute._soft_impute import linear_fill

# A small network and a short fit, for the contract tests.
SMALL = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)


def _remove(X, rate, seed, value=np.nan):
    """A copy of X with a fraction ``rate`` of its entries set to ``value``, and the mask."""
    mask = np.random.default_rng(seed).random(X.shape) < rate
    X_missing = X.copy()
    X_missing[mask] = value
    return X_missing, mask


def _rmse(X_filled, X, mask):
    return float(np.sqrt(np.mean((X_filled[mask] - X[mask]) ** 2)))


@pytest.fixture(scope="module")
def low_rank_data():
    """Rank-3 data in 12 columns of very different scales, with a little noise."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) @ rng.normal(size=(3, 12))
    X = X * np.logspace(-2, 3, 12) + np.arange(12)
    return X + 1e-3 * rng.normal(size=X.shape) * np.logspace(-2, 3, 12)


@pytest.fixture(scope="module")
def curve_data():
    """Points near a curve with one latent variable, on which no linear model is exact."""
    rng = np.random.default_rng(1)
    t = rng.uniform(-2, 2, size=(800, 1))
    X = np.hstack([t, t**2, np.sin(2 * t), np.cos(3 * t), np.tanh(t), t**3 / 4, np.exp(-(t**2))])
    return X + 0.02 * rng.normal(size=X.shape)


@pytest.fixture(scope="module")
def correlated_data():
    """Normal rows whose 8 columns are strongly correlated but of full rank.

    The correlation of columns i and j is 0.9 ** |i - j|; the columns have
    very different scales and a shift. Returns the data, the correlation
    matrix, the scales and the shift.
    """
    rng = np.random.default_rng(0)
    correlation = 0.9 ** np.abs(np.subtract.outer(np.arange(8), np.arange(8)))
    scales = np.logspace(-1, 2, 8)
    X = rng.multivariate_normal(np.zeros(8), correlation, size=400) * scales + 5
    return X, correlation, scales, 5


def _conditional_means(Z, mask, covariance):
    """Each row's missing entries (mask) filled with their conditional means, mean zero."""
    filled = Z.copy()
    for row, missing in zip(filled, mask, strict=True):
        kept = ~missing
        inverse = np.linalg.inv(covariance[np.ix_(kept, kept)])
        row[missing] = covariance[np.ix_(missing, kept)] @ inverse @ row[kept]
    return filled


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_observed_entries_unchanged_bit_for_bit(low_rank_data, dtype):
    X = low_rank_data.astype(dtype)
    X_missing, mask = _remove(X, 0.3, 0)
    filled = AutoencoderImputer(**SMALL).fit_transform(X_missing)
    assert filled.dtype == dtype
    assert not np.isnan(filled).any()
    assert np.array_equal(filled[~mask], X[~mask])


def test_recovers_low_rank_data(low_rank_data):
    X_missing, mask = _remove(low_rank_data, 0.3, 0)
    filled = AutoencoderImputer(random_state=0).fit_transform(X_missing)
    mean_fill = SimpleImputer().fit_transform(X_missing)
    # Relative to each column's scale, the fills are nearly exact.
    scale = low_rank_data.std(axis=0)
    error = _rmse(filled / scale, low_rank_data / scale, mask)
    assert error < 0.1 * _rmse(mean_fill / scale, low_rank_data / scale, mask)


def test_learns_a_nonlinear_structure(curve_data):
    X_missing, mask = _remove(curve_data, 0.3, 0)
    imputer = AutoencoderImputer(random_state=0).fit(X_missing)
    error = _rmse(imputer.transform(X_missing), curve_data, mask)
    # The network improved on its linear start, and on the nearest neighbours.
    assert imputer.best_validation_score_ > imputer.validation_scores_[0]
    assert error < _rmse(KNNImputer().fit_transform(X_missing), curve_data, mask)


def test_fills_normal_data_with_conditional_means(correlated_data):
    X, correlation, scales, shift = correlated_data
    X_missing, mask = _remove(X, 0.3, 0)
    filled = AutoencoderImputer(random_state=0).fit_transform(X_missing)
    best = _conditional_means((X - shift) / scales, mask, correlation) * scales + shift
    mean_fill = SimpleImputer().fit_transform(X_missing)
    # In each column's units: within 3% of the fill that knows the true
    # distribution (a low-rank model alone is 5% off), and far better than the
    # columns' means.
    error = _rmse(filled / scales, X / scales, mask)
    assert error < 1.03 * _rmse(best / scales, X / scales, mask)
    assert error < 0.5 * _rmse(mean_fill / scales, X / scales, mask)


@pytest.mark.parametrize("max_step_work", [None, 1000])
def test_normal_model_fills_with_its_conditional_means(
    correlated_data, max_step_work, monkeypatch
):
    if max_step_work is not None:  # the fit on a subset of the rows
        monkeypatch.setattr(skae._impute._gaussian, "MAX_STEP_WORK", max_step_work)
    X, _, scales, shift = correlated_data
    Z = (X - shift) / scales
    observed = np.random.default_rng(1).random(Z.shape) >= 0.3
    held_out = observed & (np.random.default_rng(2).random(Z.shape) < 0.1)
    Z = np.where(observed, Z, 0.0)
    (mean, components, weights), error = gaussian_model(
        Z, observed, held_out, rng=np.random.default_rng(0)
    )
    assert np.isfinite(error) and 0 < error < 0.5
    assert components.shape == (8, 8) and (weights >= 0).all() and (weights < 1).all()
    # P = components @ diag(weights) @ components.T is I - K / c, K the precision.
    precision = components @ np.diag(1 - weights) @ components.T
    expected = _conditional_means(Z - mean, ~observed, np.linalg.inv(precision)) + mean
    filled = linear_fill(Z, observed, mean, components, weights)
    np.testing.assert_allclose(filled, np.where(observed, Z, expected), atol=1e-8)


def test_same_random_state_same_fills(correlated_data):
    X_missing, _ = _remove(correlated_data[0], 0.3, 0)
    imputer = AutoencoderImputer(hidden_layer_sizes=(16,), random_state=0)
    first = imputer.fit_transform(X_missing)
    np.testing.assert_array_equal(imputer.fit_transform(X_missing), first)
    np.testing.assert_array_equal(imputer.transform(X_missing), first)


def test_wide_data(low_rank_data):
    """Beyond 128 features, the low-rank model alone; the fills still nearly exact."""
    rng = np.random.default_rng(2)
    X = np.hstack([low_rank_data] * 12)[:120] + 1e-3 * rng.normal(size=(120, 144))
    X_missing, mask = _remove(X, 0.3, 0)
    imputer = AutoencoderImputer(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    filled = imputer.fit(X_missing).transform(X_missing)
    assert imputer.n_components_ < 144
    scale = X.std(axis=0)
    mean_fill = SimpleImputer().fit_transform(X_missing)
    assert _rmse(filled / scale, X / scale, mask) < 0.1 * _rmse(mean_fill / scale, X / scale, mask)


@pytest.mark.parametrize("value", [-1, 0])
def test_sentinel_missing_values(low_rank_data, value):
    X = np.abs(low_rank_data) + 1
    X_nan, mask = _remove(X, 0.2, 0)
    X_sentinel = np.where(mask, value, X)
    expected = AutoencoderImputer(**SMALL).fit(X_nan).transform(X_nan)
    imputer = AutoencoderImputer(missing_values=value, **SMALL).fit(X_sentinel)
    np.testing.assert_allclose(imputer.transform(X_sentinel), expected, rtol=1e-6)
    assert imputer.__sklearn_tags__().input_tags.allow_nan is False
    with pytest.raises(ValueError, match="NaN"):
        imputer.transform(X_nan)


def test_missing_values_that_match_nothing(low_rank_data):
    imputer = AutoencoderImputer(**SMALL).fit(low_rank_data)
    assert np.array_equal(imputer.transform(low_rank_data), low_rank_data)
    # Entries missing at transform only, whole rows among them, are filled.
    X_missing, mask = _remove(low_rank_data, 0.3, 1)
    X_missing[:5] = np.nan
    filled = imputer.transform(X_missing)
    assert np.isfinite(filled).all()
    np.testing.assert_allclose(filled[:5], np.tile(filled[0], (5, 1)))


def test_indicator_and_feature_names(low_rank_data):
    X_missing, _ = _remove(low_rank_data, 0.1, 0)
    X_missing[:, 4] = low_rank_data[:, 4]
    imputer = AutoencoderImputer(add_indicator=True, **SMALL).fit(X_missing)
    out = imputer.transform(X_missing)
    expected = MissingIndicator().fit(X_missing).transform(X_missing)
    assert out.shape == (300, 12 + 11)
    np.testing.assert_array_equal(out[:, 12:], expected)
    names = imputer.get_feature_names_out()
    assert list(names[:2]) == ["x0", "x1"]
    assert "missingindicator_x4" not in names and "missingindicator_x5" in names


@pytest.mark.parametrize("keep", [True, False])
def test_empty_features(low_rank_data, keep):
    X_missing, _ = _remove(low_rank_data, 0.1, 0)
    X_missing[:, 2] = np.nan
    imputer = AutoencoderImputer(keep_empty_features=keep, **SMALL).fit(X_missing)
    if keep:
        out = imputer.transform(X_missing)
        assert out.shape[1] == 12 and (out[:, 2] == 0).all()
    else:
        with pytest.warns(UserWarning, match=r"without any observed values.*\[2\]"):
            out = imputer.transform(X_missing)
        assert out.shape[1] == 11
        observed = ~np.isnan(X_missing[:, 3])
        np.testing.assert_array_equal(out[observed, 2], X_missing[observed, 3])
    assert len(imputer.get_feature_names_out()) == out.shape[1]


def test_pandas_output_and_names():
    X = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0, 5.0], "b": [2.0, np.nan, 6.0, 8.0, 10.0]})
    imputer = AutoencoderImputer(add_indicator=True, **SMALL).set_output(transform="pandas")
    out = imputer.fit_transform(X)
    assert list(out.columns) == ["a", "b", "missingindicator_a", "missingindicator_b"]
    assert out["a"].iloc[0] == 1.0 and out["b"].iloc[2] == 6.0


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array([[1.0, np.inf], [2.0, 3.0]]), ValueError, "infinity"),
        (np.full((4, 3), np.nan), ValueError, "no observed entry"),
        (np.array([["a", 1.0], ["b", 2.0]], dtype=object), ValueError, "could not convert"),
        (sp.random(10, 4, density=0.5, format="csr", random_state=0), TypeError, "[Ss]parse"),
    ],
)
def test_bad_input(X, error, match):
    with pytest.raises(error, match=match):
        AutoencoderImputer(**SMALL).fit(X)


def test_failed_fit_leaves_the_imputer_as_it_was(low_rank_data):
    imputer = AutoencoderImputer(**SMALL).fit(low_rank_data)
    before = dict(vars(imputer))
    with pytest.raises(ValueError, match="no observed entry"):
        imputer.fit(np.full((4, 12), np.nan))
    assert vars(imputer).keys() == before.keys()
    assert all(vars(imputer)[name] is before[name] for name in before)


def test_save_and_pickle_round_trips(low_rank_data):
    X_missing, _ = _remove(low_rank_data, 0.2, 0)
    imputer = AutoencoderImputer(add_indicator=True, **SMALL).fit(X_missing)
    buffer = io.BytesIO()
    save(imputer, buffer)
    expected = imputer.transform(X_missing)
    np.testing.assert_array_equal(load(buffer).transform(X_missing), expected)
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(imputer)).transform(X_missing), expected
    )


def test_pipeline_and_grid_search():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    X_missing, _ = _remove(X, 0.2, 0)
    pipeline = make_pipeline(AutoencoderImputer(**SMALL), LogisticRegression())
    search = GridSearchCV(pipeline, {"autoencoderimputer__mask_fraction": [0.1, 0.3]}, cv=2)
    search.fit(X_missing, y)
    assert search.score(X_missing, y) > 0.7


@pytest.mark.parametrize("n_features", [2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_tables_of_two_rows_are_filled(n_features, seed):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(2, n_features))
    X[0, 0] = X[1, -1] = np.nan
    filled = AutoencoderImputer(max_iter=2, random_state=seed).fit_transform(X)
    assert np.isfinite(filled).all()
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(filled[observed], X[observed])


@pytest.mark.parametrize("scale", [1e200, 1e-200])
def test_fills_follow_the_data_at_any_scale(scale):
    # Scaled inside, unscaled outside: a table at 1e200 (or 1e-200) is
    # filled as the same table at unit scale, times the scale.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4))
    X[rng.rand(*X.shape) < 0.2] = np.nan
    params = dict(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    unit = AutoencoderImputer(**params).fit_transform(X)
    scaled = AutoencoderImputer(**params).fit_transform(X * scale)
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(scaled / scale, unit, rtol=1e-6, atol=1e-6)


def test_pandas_na_marks_missing_entries_as_nan_does():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 3))
    X[rng.rand(*X.shape) < 0.2] = np.nan
    params = dict(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    expected = AutoencoderImputer(**params).fit_transform(X)
    frame = pd.DataFrame(X).astype("Float64")
    assert frame.isna().to_numpy().sum() == np.isnan(X).sum()
    imputer = AutoencoderImputer(missing_values=pd.NA, **params)
    np.testing.assert_allclose(imputer.fit_transform(frame), expected)
    objects = np.where(np.isnan(X), pd.NA, X).astype(object)
    np.testing.assert_allclose(imputer.fit(objects).transform(objects), expected)


def test_pandas_na_keeps_what_cannot_hold_it_as_it_is(tmp_path):
    """With pd.NA as the marker, float32 stays float32, dataframes keep their
    names, sparse input gets scikit-learn's error, and the imputer saves."""
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3)) @ rng.normal(size=(3, 3))
    X[rng.rand(*X.shape) < 0.2] = np.nan
    params = dict(missing_values=pd.NA, hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    assert AutoencoderImputer(**params).fit_transform(X.astype(np.float32)).dtype == np.float32
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).astype({"a": "Float64"})
    imputer = AutoencoderImputer(**params).fit(frame)
    assert list(imputer.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names should match"):
        imputer.transform(frame[["c", "b", "a"]])
    with pytest.raises(TypeError, match="Sparse data was passed"):
        AutoencoderImputer(**params).fit(sp.csr_matrix(np.nan_to_num(X)))
    save(imputer, tmp_path / "imputer.skae")
    loaded = load(tmp_path / "imputer.skae")
    assert loaded.missing_values is pd.NA
    np.testing.assert_array_equal(loaded.transform(frame), imputer.transform(frame))
    polars = pytest.importorskip("polars")
    named = AutoencoderImputer(**params).fit(polars.from_pandas(frame.astype(float)))
    assert list(named.feature_names_in_) == ["a", "b", "c"]


def test_encoding_dim_caps_the_rank_and_is_grid_searched():
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3)) @ rng.normal(size=(3, 8))
    y = X[:, 0] + rng.normal(scale=0.1, size=120)
    X[rng.rand(*X.shape) < 0.2] = np.nan
    params = dict(hidden_layer_sizes=(8,), max_iter=1, random_state=0)
    assert AutoencoderImputer(**params).fit(X).n_components_ > 2
    capped = AutoencoderImputer(encoding_dim=2, **params).fit(X)
    assert capped.n_components_ == 2 and np.isfinite(capped.transform(X)).all()
    pipeline = make_pipeline(AutoencoderImputer(**params), Ridge())
    grid = GridSearchCV(pipeline, {"autoencoderimputer__encoding_dim": [1, 3]}, cv=2)
    assert grid.fit(X, y).best_params_ == {"autoencoderimputer__encoding_dim": 3}
    with pytest.raises(ValueError, match="encoding_dim"):
        AutoencoderImputer(encoding_dim=0).fit(X)


def test_network_beats_the_linear_fill_where_the_conditional_mean_is_nonlinear():
    # The second and third columns are functions of the first, always
    # observed, plus noise: their conditional means given it are known, and
    # no linear model comes near them (t and t**2 are uncorrelated).
    rng = np.random.default_rng(0)
    t = rng.uniform(-2, 2, 1000)
    means = np.column_stack([t, t**2, np.sin(2 * t), np.zeros_like(t)])
    X = means + np.column_stack(
        [np.zeros_like(t), 0.05 * rng.normal(size=(1000, 2)), rng.normal(size=1000)]
    )
    mask = np.zeros(X.shape, dtype=bool)
    mask[:, 1:3] = rng.random((1000, 2)) < 0.3
    X_missing = np.where(mask, np.nan, X)
    network = AutoencoderImputer(random_state=0).fit(X_missing)
    linear = AutoencoderImputer(hidden_layer_sizes=(), random_state=0).fit(X_missing)
    error = _rmse(network.transform(X_missing), means, mask)
    assert error < 0.4 * _rmse(linear.transform(X_missing), means, mask)
    assert error < 0.35
    # The correction's output layer, which starts at zero, was kept trained.
    assert all(coef.any() for coef in network.coefs_)


def test_training_copies_hide_other_entries_each_epoch():
    from skae._impute._copies import TrainingCopies, fit_linear_model

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    observed = rng.random(Z.shape) > 0.2
    Z = np.where(observed, Z, 0.0)
    model = fit_linear_model(Z, observed, np.random.default_rng(1))
    copies = TrainingCopies(Z, observed, model, 0.25, np.random.default_rng(2))
    rows = np.arange(40)
    pairs = copies.pairs(rows, fresh=True)
    assert pairs.shape == (40 * copies.n_copies, 6)
    before = pairs.mask.copy(), pairs.inputs.copy()
    pairs.new_epoch()
    assert not np.array_equal(pairs.mask, before[0])
    tiled = np.tile(observed[rows], (copies.n_copies, 1))
    # Only observed entries are hidden; the others keep their linear fill.
    assert not (pairs.mask & ~tiled).any()
    kept = tiled & ~pairs.mask
    assert np.array_equal(pairs.inputs[kept], pairs.targets[kept])
    # Validation pairs stay as they are.
    fixed = copies.pairs(rows)
    mask = fixed.mask.copy()
    fixed.new_epoch()
    assert np.array_equal(fixed.mask, mask)


def test_training_hides_other_entries_every_epoch_after_the_first(monkeypatch):
    from skae._nn._batches import MaskedPairs

    masks = []
    new_epoch = MaskedPairs.new_epoch

    def recording(pairs):
        new_epoch(pairs)
        masks.append(pairs.mask.copy())

    monkeypatch.setattr(MaskedPairs, "new_epoch", recording)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 5)) @ rng.normal(size=(5, 5))
    X[rng.rand(*X.shape) < 0.2] = np.nan
    params = dict(hidden_layer_sizes=(8,), max_iter=3, n_iter_no_change=np.inf, random_state=0)
    AutoencoderImputer(**params).fit(X)
    assert len(masks) == 2
    assert not np.array_equal(masks[0], masks[1])


# The nearest training rows' blend


def _clustered(n_samples):
    """Rows near one of 12 centres in 8 columns: more clusters than a linear model tells apart."""
    rng = np.random.default_rng(0)
    centres = 2 * rng.normal(size=(12, 8))
    X = centres[rng.integers(12, size=n_samples)] + 0.2 * rng.normal(size=(n_samples, 8))
    return X, *_remove(X, 0.3, 1)


@pytest.fixture(scope="module")
def clustered_data():
    return _clustered(600)


def test_nearest_rows_blend_restores_clustered_data_better(clustered_data):
    X, X_missing, mask = clustered_data
    params = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    blended = AutoencoderImputer(**params).fit(X_missing)
    alone = AutoencoderImputer(n_neighbors=0, **params).fit(X_missing)
    assert blended.n_neighbors_ == 10 and blended.neighbor_weight_ > 0
    assert blended._neighbor_rows.shape == X.shape
    error = _rmse(blended.transform(X_missing), X, mask)
    assert error < 0.85 * _rmse(alone.transform(X_missing), X, mask)


def test_no_neighbours_is_the_network_fill_exactly(clustered_data):
    # The blend is chosen after training, from its own random stream: the
    # network is the same whatever n_neighbors, and weight 0 is its fill.
    _, X_missing, _ = clustered_data
    params = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    alone = AutoencoderImputer(n_neighbors=0, **params).fit(X_missing)
    assert alone.n_neighbors_ == 0 and alone.neighbor_weight_ == 0
    assert alone._neighbor_rows.shape == (0, 8)
    blended = AutoencoderImputer(**params).fit(X_missing)
    for name in ("coefs_", "intercepts_"):
        for a, b in zip(getattr(alone, name), getattr(blended, name), strict=True):
            np.testing.assert_array_equal(a, b)
    observed = ~np.isnan(X_missing)
    Z = alone._scaled(X_missing, observed)
    network = alone._network_fill(Z, observed) * alone._column_scale + alone._column_location
    expected = np.where(observed, X_missing, network)
    np.testing.assert_array_equal(alone.transform(X_missing), expected)
    blended.neighbor_weight_ = 0.0
    np.testing.assert_array_equal(blended.transform(X_missing), expected)


def test_blend_is_not_chosen_where_the_network_restores_better(correlated_data):
    # Normal rows: the conditional means are the best fill; the neighbours'
    # values only add their noise.
    Z = correlated_data[0]
    X_missing, _ = _remove(Z, 0.2, 0)
    imputer = AutoencoderImputer(hidden_layer_sizes=(), random_state=0).fit(X_missing)
    assert imputer.neighbor_weight_ <= 0.1


@pytest.mark.parametrize("n_neighbors", [-1, 1.5, "10", None])
def test_bad_n_neighbors(n_neighbors):
    X_missing, _ = _remove(np.random.default_rng(0).normal(size=(20, 3)), 0.2, 0)
    with pytest.raises(ValueError, match="'n_neighbors' parameter"):
        AutoencoderImputer(n_neighbors=n_neighbors, **SMALL).fit(X_missing)


def test_n_neighbors_is_capped_at_the_other_training_rows():
    X = np.random.default_rng(0).normal(size=(6, 3))
    X[0, 0] = X[3, 2] = np.nan
    imputer = AutoencoderImputer(n_neighbors=50, **SMALL).fit(X)
    assert imputer.n_neighbors_ == 5
    assert np.isfinite(imputer.transform(X)).all()
    single = AutoencoderImputer(n_neighbors=50, **SMALL).fit([[1.0, np.nan, 3.0]])
    assert single.n_neighbors_ == 0 and single.neighbor_weight_ == 0


def test_a_row_is_not_its_own_neighbour_when_the_blend_is_chosen():
    from skae._impute._neighbours import TrainingNeighbours, choose_weight

    rows = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 7.0]])
    observed = np.array([[True, True], [True, True], [True, False], [True, True]])
    neighbours = TrainingNeighbours(rows, observed, 1, np.ones(2))
    means, found = neighbours.means(rows, exclude=np.array([0, -1, 2, 3]))
    # Row 1 may be its own neighbour; the others are not, and row 3's
    # neighbour, row 2, did not observe its second feature.
    np.testing.assert_array_equal(means, [[0.0, 1.0], [0.0, 1.0], [5.0, 7.0], [5.0, 0.0]])
    np.testing.assert_array_equal(found, [[True, True]] * 3 + [[True, False]])
    means, found = neighbours.means(rows[3:] + 0.1)
    np.testing.assert_array_equal(means, [[5.0, 7.0]])
    # A weight above 0 only where the blend restores the hidden entries better.
    fill, targets = np.zeros((1, 2)), np.array([[1.0, 1.0]])
    hidden = np.ones((1, 2), dtype=bool)
    weight, errors = choose_weight(fill, np.full((1, 2), -1.0), found | True, targets, hidden)
    assert weight == 0 and errors.argmin() == 0
    weight, errors = choose_weight(fill, np.full((1, 2), 0.5), found | True, targets, hidden)
    assert weight == 1 and errors[-1] < errors[0]


def test_refitted_copy_never_sees_its_hidden_entries():
    from skae._impute._copies import fit_linear_model
    from skae._impute._neighbours import refit_copy

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(40, 4)) @ rng.normal(size=(4, 4))
    observed = rng.random(Z.shape) > 0.2
    hidden = observed & (rng.random(Z.shape) < 0.3)
    seen = []

    def fit(Z_visible, visible):
        seen.append((Z_visible.copy(), visible.copy()))
        return fit_linear_model(Z_visible, visible, np.random.default_rng(1))

    fill, means, found, targets, mask = refit_copy(Z, observed, fit, 3, np.ones(4), hidden)
    # The model, the fill and the neighbours' means are the same whatever
    # the hidden values: the copy is scored on entries it never saw.
    other = np.where(hidden, Z + 100.0, Z)
    again = refit_copy(other, observed, fit, 3, np.ones(4), hidden)
    np.testing.assert_array_equal(seen[0][0], seen[1][0])
    np.testing.assert_array_equal(seen[0][1], observed & ~hidden)
    np.testing.assert_array_equal(fill, again[0])
    np.testing.assert_array_equal(means, again[1])
    np.testing.assert_array_equal(targets, Z)
    np.testing.assert_array_equal(mask, hidden)
    visible = observed & ~hidden
    np.testing.assert_array_equal(fill[visible], Z[visible])
    assert not np.allclose(fill[hidden], Z[hidden])


@pytest.mark.parametrize(
    "data, network_kept, n_refits",
    [("clustered", False, 3), ("clustered", True, 0), ("normal", False, 0)],
)
def test_refitted_copies_weigh_the_blend_of_the_linear_model(
    monkeypatch, data, network_kept, n_refits
):
    # Where the held-out check keeps the linear model, fitted on every
    # entry, and its held-out copies choose a blend, copies fitted again
    # without their hidden entries choose its weight; a kept network is
    # scored on held-out rows it never saw, and normal rows, whose
    # conditional means are the best fill, choose no blend at all.
    from skae._impute import _linear_start

    calls = []
    refit_copy = _linear_start.refit_copy

    def counting(*args):
        calls.append(args)
        return refit_copy(*args)

    monkeypatch.setattr(_linear_start, "refit_copy", counting)
    if data == "clustered":
        _, X_missing, _ = _clustered(150)
    else:
        rng = np.random.default_rng(0)
        X_missing, _ = _remove(rng.normal(size=(150, 8)) @ rng.normal(size=(8, 8)), 0.3, 1)
    params = dict(hidden_layer_sizes=(16,), max_iter=5 if network_kept else 1, random_state=0)
    imputer = AutoencoderImputer(learning_rate_init=1e-2 if network_kept else 1e-9, **params)
    imputer.fit(X_missing)
    assert all(coef.any() for coef in imputer.coefs_) == network_kept
    assert len(calls) == n_refits
    assert (imputer.neighbor_weight_ > 0) == (data == "clustered")
    assert np.isfinite(imputer.transform(X_missing)).all()


@pytest.mark.parametrize("activation", ["gelu", "relu", "tanh"])
def test_hand_derived_step_trains_beside_the_frozen_linear_path(activation):
    # The imputer's linear path stays the linear model: the hand-derived
    # step gives its perceptrons the gradients autograd gives them.
    from skae._impute._copies import TrainingCopies, fit_linear_model, start_at_model
    from skae._nn._optim import flat_parameters
    from skae._nn._steps import AutogradStep, PerceptronStep, trainable
    from skae._nn._train import TrainingOptions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 9))
    X_missing, mask = _remove(X, 0.2, 0)
    Z, observed = (X_missing - np.nanmean(X_missing, axis=0)) / 3, ~mask
    Z[mask] = 0.0
    model = fit_linear_model(Z, observed, rng)
    pairs = TrainingCopies(Z, observed, model, 0.2, rng).pairs(np.arange(60))
    network = {"hidden_layer_sizes": [7, 5], "activation": activation}
    module = start_at_model(model, network, pairs.inputs[:100], torch.Generator().manual_seed(0))
    with torch.no_grad():
        # Every weight away from its start, the perceptrons' last layers from zero.
        for p in trainable(module):
            p.add_(torch.as_tensor(0.3 * rng.standard_normal(p.shape), dtype=p.dtype))
    frozen = [p for p in module.parameters() if not p.requires_grad]
    assert len(frozen) == 4
    options = TrainingOptions.from_params(
        AutoencoderImputer(alpha=0.1).get_params(),
        batch_size=20,
        max_iter=1,
        learning_rate="constant",
        precision="float32",
    )
    cpu = torch.device("cpu")
    assert PerceptronStep.applies(module, pairs, options, cpu)
    rows = torch.tensor([3, 0, 17, 9, 33, 2, 101, 250])
    results = []
    for step_class in (AutogradStep, PerceptronStep):
        with flat_parameters(trainable(module)) as (_, grad):
            step = step_class(module, pairs, grad, options=options, generator=None, device=cpu)
            results.append((float(step(rows)), grad.clone().numpy()))
    (expected_loss, expected), (loss, got) = results
    assert got.any()
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    # A layer half frozen is left to autograd.
    module.decoder_branch[0].bias.requires_grad_(False)
    assert not PerceptronStep.applies(module, pairs, options, cpu)


def _disks(n_samples, size, seed):
    """Images of a soft disk of random centre and radius: a curved family, local in each image."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:size, :size]
    centres = rng.uniform(2, size - 2, (n_samples, 2, 1, 1))
    radii = rng.uniform(2, 4, (n_samples, 1, 1))
    distances = np.hypot(rows - centres[:, 0], columns - centres[:, 1])
    return (1 / (1 + np.exp(-3 * (radii - distances)))).reshape(n_samples, -1)


def test_image_shape_scales_the_pixels_of_a_channel_alike():
    """Each channel's pixels share the mean and spread of all its observed values."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(60, 2, 9)) * [[1.0], [5.0]] + [[0.0], [10.0]]
    images[:, 0, 0] = 3.0  # a pixel always at one value
    X = images.reshape(60, 18)
    X_missing, _ = _remove(X, 0.2, 0)
    imputer = AutoencoderImputer(image_shape=(2, 3, 3), hidden_layer_sizes=(), max_iter=1)
    imputer.fit(X_missing)
    for channel in range(2):
        values = X_missing[:, 9 * channel : 9 * (channel + 1)]
        values = values[~np.isnan(values)]
        pixels = slice(9 * channel, 9 * (channel + 1))
        np.testing.assert_allclose(imputer._column_location[pixels], values.mean())
        np.testing.assert_allclose(imputer._column_scale[pixels], values.std())


def test_image_shape_restores_pixels_from_their_neighbourhood():
    """Convolutions of the image at full resolution beat the linear fill on images of disks.

    The images are a curved family that no low-rank model spans, while each
    hidden pixel follows from the pixels around it.
    """
    X = _disks(400, 12, 0)
    X_missing, mask = _remove(X, 0.3, 0)
    params = dict(image_shape=(12, 12), hidden_layer_sizes=(8, 8), n_neighbors=0, random_state=0)
    imputer = AutoencoderImputer(max_iter=3, **params).fit(X_missing)
    assert imputer._network_spec["kind"] == "local_conv"
    kernels = [(8, 1, 3, 3), (8, 8, 3, 3), (1, 8, 3, 3)]
    assert [coef.shape for coef in imputer.coefs_[2:]] == kernels
    filled = imputer.transform(X_missing)
    assert np.array_equal(filled[~mask], X_missing[~mask])
    # The linear model the network started at, alone.
    linear = imputer._linear_fill(imputer._scaled(X_missing, ~mask), ~mask)
    linear = linear * imputer._column_scale + imputer._column_location
    assert _rmse(filled, X, mask) < 0.7 * _rmse(linear, X, mask)
    again = AutoencoderImputer(max_iter=3, **params).fit(X_missing).transform(X_missing)
    assert np.array_equal(filled, again)


@pytest.fixture(scope="module")
def floored_data():
    """Rank-2 normal data cut at 0 from below in its first four of 6 columns, as counts are."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(400, 6))
    X[:, :4] = np.maximum(X[:, :4], 0.0)
    return X


def test_fill_stops_at_the_floor_the_values_pile_up_on(floored_data):
    X = floored_data
    X_missing, mask = _remove(X, 0.3, 0)
    params = dict(hidden_layer_sizes=(), n_neighbors=0, random_state=0)
    imputer = AutoencoderImputer(**params).fit(X_missing)
    np.testing.assert_array_equal(imputer._min_value, [0, 0, 0, 0, -np.inf, -np.inf])
    np.testing.assert_array_equal(imputer._max_value, np.full(6, np.inf))
    filled = imputer.transform(X_missing)
    unbounded = AutoencoderImputer(min_value=None, max_value=None, **params).fit(X_missing)
    free = unbounded.transform(X_missing)
    floored = mask[:, :4]
    assert (free[:, :4][floored] < -0.1).sum() > 20
    assert filled[:, :4][floored].min() == 0.0
    np.testing.assert_array_equal(filled[:, 4:], free[:, 4:])
    assert _rmse(filled, X, mask) < 0.97 * _rmse(free, X, mask)


def test_continuous_features_have_no_bounds(low_rank_data):
    X_missing, _ = _remove(low_rank_data, 0.2, 0)
    imputer = AutoencoderImputer(**SMALL).fit(X_missing)
    assert np.isneginf(imputer._min_value).all() and np.isposinf(imputer._max_value).all()


def test_image_channels_share_their_bounds():
    """A pixel takes its channel's floor and ceiling, though its own values never reach them."""
    rng = np.random.default_rng(0)
    X = np.clip(rng.normal(0.5, 0.4, size=(200, 2, 9)), 0, 1)
    X[:, 1] = 10 * X[:, 1]
    X[:, 0, 4] = rng.uniform(0.4, 0.6, size=200)
    X = X.reshape(200, 18)
    X_missing, _ = _remove(X, 0.2, 0)
    imputer = AutoencoderImputer(image_shape=(2, 3, 3), hidden_layer_sizes=(), max_iter=1)
    imputer.fit(X_missing)
    np.testing.assert_array_equal(imputer._min_value, np.zeros(18))
    np.testing.assert_array_equal(imputer._max_value, np.repeat([1.0, 10.0], 9))


def test_given_bounds(floored_data):
    X_missing, mask = _remove(floored_data, 0.3, 0)
    low = np.array([-1.0, -1.0, 0.1, 0.1, -0.5, -np.inf])
    given = low.copy()
    imputer = AutoencoderImputer(min_value=given, max_value=0.5, **SMALL).fit(X_missing)
    np.testing.assert_array_equal(given, low)
    filled = imputer.transform(X_missing)[mask]
    assert filled.max() <= 0.5 and (filled == 0.5).any()
    assert (filled >= np.broadcast_to(low, mask.shape)[mask]).all()
    # An "auto" bound never crosses a given one.
    imputer = AutoencoderImputer(max_value=-1.0, **SMALL).fit(X_missing)
    np.testing.assert_array_equal(imputer._min_value, [-1, -1, -1, -1, -np.inf, -np.inf])
    assert (imputer.transform(X_missing)[:, :4][mask[:, :4]] == -1.0).all()


def test_bounds_as_a_series_are_saved(floored_data, tmp_path):
    X_missing, _ = _remove(floored_data, 0.3, 0)
    bounds = pd.Series(np.linspace(-0.5, 0.0, 6), index=list("abcdef"))
    imputer = AutoencoderImputer(min_value=bounds, **SMALL).fit(X_missing)
    save(imputer, tmp_path / "imputer.skae")
    loaded = load(tmp_path / "imputer.skae")
    assert loaded.get_params()["min_value"] == bounds.tolist()
    np.testing.assert_array_equal(loaded.transform(X_missing), imputer.transform(X_missing))


def test_empty_feature_is_filled_with_zero_whatever_its_bounds(low_rank_data):
    X_missing, _ = _remove(low_rank_data, 0.1, 0)
    X_missing[:, 2] = np.nan
    imputer = AutoencoderImputer(keep_empty_features=True, min_value=1.0, **SMALL)
    assert (imputer.fit_transform(X_missing)[:, 2] == 0).all()


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(min_value=[0.0, 1.0]), r"min_value should be .* shape \(12,\).* got shape \(2,\)"),
        (dict(max_value=np.zeros((12, 1))), "max_value"),
        (dict(min_value=np.full(12, np.nan)), r"min_value holds NaN or None for features \[0,"),
        (dict(max_value=[0.0] * 11 + [None]), r"max_value holds NaN .* \[11\]; .* takes np.inf"),
        (dict(min_value=["a"] * 12), "min_value should hold numbers, one per feature"),
        (dict(min_value=np.array("a")), "min_value should hold numbers, one per feature"),
        (dict(min_value=1.0, max_value=1.0), r"features \[0, 1, 2,.*\] have min_value >= max"),
        (dict(min_value="auto", max_value="none"), "max_value"),
        (dict(min_value=np.inf), r"min_value is inf for features \[0, 1,"),
        (dict(max_value=[0.0] * 11 + [-np.inf]), r"max_value is -inf for features \[11\]"),
    ],
)
def test_bad_bounds(low_rank_data, params, match):
    imputer = AutoencoderImputer(**params, **SMALL)
    with pytest.raises(ValueError, match=match):
        imputer.fit(low_rank_data)
    assert not hasattr(imputer, "n_features_in_")


def test_auto_hidden_layers_by_whether_rows_are_images():
    """A perceptron of 256 for rows; five convolutions of 32 channels for images."""
    rng = np.random.default_rng(0)
    X_missing, _ = _remove(rng.random((60, 9)), 0.2, 0)
    rows = AutoencoderImputer(max_iter=1, random_state=0).fit(X_missing)
    assert rows._network_spec["hidden_layer_sizes"] == [256]
    images = AutoencoderImputer(image_shape=(3, 3), max_iter=1, random_state=0).fit(X_missing)
    assert images._network_spec["kind"] == "local_conv"
    assert [coef.shape for coef in images.coefs_[2:]] == [
        (32, 1, 3, 3),
        *[(32, 32, 3, 3)] * 4,
        (1, 32, 3, 3),
    ]
