"""Tests of AutoencoderOutlierDetector."""

import io
import pickle

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from skae import AutoencoderOutlierDetector, AutoencoderTransformer, load, save

# Enough training for the small data sets below, in a fraction of a second.
FAST = dict(max_iter=5, random_state=0)


def planted(n_inliers=400, n_outliers=10, n_features=20, rank=3, seed=0):
    """Data near a rank-3 subspace, and a few points off it with the same norm.

    Returns X (the outliers last) and y, 1 for the planted outliers.
    """
    rng = np.random.RandomState(seed)
    basis = np.linalg.qr(rng.normal(size=(n_features, n_features)))[0]
    inliers = rng.normal(size=(n_inliers, rank)) * [3.0, 2.0, 1.0] @ basis[:, :rank].T
    inliers += 0.05 * rng.normal(size=inliers.shape)
    # Off the subspace: in the orthogonal complement, as far from the mean as
    # a typical inlier.
    directions = rng.normal(size=(n_outliers, n_features - rank)) @ basis[:, rank:].T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    outliers = directions * np.median(np.linalg.norm(inliers, axis=1))
    X = np.vstack([inliers, outliers]) + 1.0
    y = np.r_[np.zeros(n_inliers), np.ones(n_outliers)].astype(int)
    return X, y


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def fitted(data):
    X, _ = data
    return AutoencoderOutlierDetector(**FAST).fit(X)


def test_outlier_detector_contract(data, fitted):
    X, _ = data
    scores = fitted.score_samples(X)
    decision = fitted.decision_function(X)
    labels = fitted.predict(X)
    assert scores.shape == decision.shape == labels.shape == (X.shape[0],)
    assert scores.dtype == decision.dtype == np.float64
    assert labels.dtype.kind == "i"
    assert set(np.unique(labels)) == {-1, 1}
    assert isinstance(fitted.offset_, float)
    np.testing.assert_array_equal(decision, scores - fitted.offset_)
    np.testing.assert_array_equal(labels, np.where(decision < 0, -1, 1))
    assert fitted.n_iter_ >= 1
    np.testing.assert_array_equal(AutoencoderOutlierDetector(**FAST).fit_predict(X), labels)


def test_float32_data_gets_float64_scores(data):
    X, _ = data
    detector = AutoencoderOutlierDetector(**FAST).fit(X.astype(np.float32))
    assert detector.coefs_[0].dtype == np.float32
    assert detector.score_samples(X.astype(np.float32)).dtype == np.float64


@pytest.mark.parametrize("contamination", [0.05, 0.2])
def test_contamination_is_the_fraction_of_training_data_flagged(contamination):
    X = np.random.RandomState(0).normal(size=(500, 10))
    detector = AutoencoderOutlierDetector(contamination=contamination, **FAST).fit(X)
    flagged = np.mean(detector.predict(X) == -1)
    assert abs(flagged - contamination) <= 0.01


def test_planted_outliers_rank_first(data, fitted):
    X, y = data
    assert roc_auc_score(y, -fitted.score_samples(X)) > 0.99
    # The "auto" threshold flags nearly every planted outlier and few inliers.
    labels = fitted.predict(X)
    assert np.mean(labels[y == 1] == -1) >= 0.9
    assert np.mean(labels[y == 0] == -1) < 0.05


def test_outliers_in_an_empty_region_of_the_subspace_rank_first():
    # Two clusters on a plane in 10 dimensions, and outliers on the plane
    # between them: reconstructed as well as the inliers, but their codes
    # have no training samples around them.
    rng = np.random.RandomState(0)
    basis = np.linalg.qr(rng.normal(size=(10, 2)))[0].T
    clusters = [center + 0.5 * rng.normal(size=(200, 2)) for center in ([-4, 0], [4, 0])]
    between = rng.uniform(-1.5, 1.5, size=(10, 2))
    X = np.vstack([*clusters, between]) @ basis + 0.01 * rng.normal(size=(410, 10))
    y = np.r_[np.zeros(400), np.ones(10)]
    detector = AutoencoderOutlierDetector(**FAST).fit(X)
    assert roc_auc_score(y, -detector.score_samples(X)) > 0.95
    # The reconstruction error alone does not find them.
    autoencoder = AutoencoderTransformer(detector.n_components_, **FAST).fit(X)
    assert roc_auc_score(y, -autoencoder.score_samples(X)) < 0.8


def test_planted_outliers_rank_first_as_novelties(data):
    X, y = data
    new, y_new = planted(n_inliers=200, n_outliers=20, seed=1)
    # The same subspace as the training data, new samples.
    new, y_new = np.vstack([X[y == 0][:200], new[y_new == 1]]), np.r_[np.zeros(200), np.ones(20)]
    detector = AutoencoderOutlierDetector(**FAST).fit(X[y == 0])
    assert roc_auc_score(y_new, -detector.score_samples(new)) > 0.99


def test_auto_threshold_flags_few_samples_of_clean_data():
    X = np.random.RandomState(0).normal(size=(1000, 8))
    detector = AutoencoderOutlierDetector(**FAST).fit(X)
    assert np.mean(detector.predict(X) == -1) < 0.02


@pytest.mark.parametrize(
    "shape, encoding_dim",
    [
        ((400, 30), 24),
        ((400, 4), 2),
        ((400, 100), 32),
        ((120, 64), 12),
        ((15, 30), 1),
        ((50, 1), 1),
    ],
)
def test_auto_code_is_narrower_than_the_data(shape, encoding_dim):
    X = np.random.RandomState(0).normal(size=shape)
    detector = AutoencoderOutlierDetector(**FAST).fit(X)
    assert detector.n_components_ == encoding_dim
    assert detector.get_params()["encoding_dim"] == "auto"


def test_explicit_code_width_is_used(data):
    X, _ = data
    detector = AutoencoderOutlierDetector(encoding_dim=3, **FAST).fit(X)
    assert detector.n_components_ == 3


def test_fraction_of_variance_sets_the_code_as_for_pca(data):
    X, y = data
    detector = AutoencoderOutlierDetector(encoding_dim=0.9, **FAST).fit(X)
    scaled = PCA(0.9).fit(detector._scaled(X))
    assert detector.n_components_ == scaled.n_components_ == 3
    assert detector.explained_variance_ratio_.sum() >= 0.9
    assert roc_auc_score(y, -detector.score_samples(X)) > 0.95


@pytest.mark.parametrize("encoding_dim", [1.0, 0.0, float("nan"), "half"])
def test_bad_fraction_is_refused(data, encoding_dim):
    with pytest.raises(ValueError, match="encoding_dim"):
        AutoencoderOutlierDetector(encoding_dim=encoding_dim, **FAST).fit(data[0])


def test_works_after_a_scaler_in_a_pipeline():
    X, y = planted()
    X = X * np.linspace(1, 100, X.shape[1])
    pipeline = make_pipeline(StandardScaler(), AutoencoderOutlierDetector(**FAST)).fit(X)
    assert roc_auc_score(y, -pipeline.score_samples(X)) > 0.99
    assert set(np.unique(pipeline.predict(X))) == {-1, 1}


def test_save_and_load_give_bit_identical_scores(data, fitted):
    X, _ = data
    buffer = io.BytesIO()
    save(fitted, buffer)
    restored = load(buffer)
    assert "_code_neighbours" not in vars(restored)
    np.testing.assert_array_equal(restored.score_samples(X), fitted.score_samples(X))
    assert restored.offset_ == fitted.offset_
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))


def test_pickle_gives_bit_identical_scores_without_torch_objects(data, fitted):
    X, _ = data
    fitted.score_samples(X[:5])  # builds and caches the network and the neighbours
    data_ = pickle.dumps(fitted)
    assert b"torch" not in data_
    assert b"NearestNeighbors" not in data_
    np.testing.assert_array_equal(pickle.loads(data_).score_samples(X), fitted.score_samples(X))


@pytest.mark.parametrize("contamination", [0, -0.1, 0.6, "high", None])
def test_invalid_contamination_is_refused_at_fit(data, contamination):
    X, _ = data
    detector = AutoencoderOutlierDetector(contamination=contamination)
    with pytest.raises(InvalidParameterError, match="'contamination' parameter"):
        detector.fit(X)
    assert not hasattr(detector, "offset_")


def test_failed_refit_leaves_the_fitted_detector_as_it_was(data):
    X, _ = data
    detector = AutoencoderOutlierDetector(**FAST).fit(X)
    scores = detector.score_samples(X)
    state = dict(vars(detector))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        detector.fit(bad)
    assert vars(detector).keys() == state.keys()
    np.testing.assert_array_equal(detector.score_samples(X), scores)


def test_one_sample_is_refused():
    with pytest.raises(ValueError, match="at least 2 samples"):
        AutoencoderOutlierDetector(**FAST).fit(np.ones((1, 3)))


def test_scores_need_the_training_width(fitted, data):
    X, _ = data
    with pytest.raises(ValueError, match="features"):
        fitted.score_samples(X[:, :5])


def test_no_partial_fit():
    # The scores are calibrated on the whole training set at once.
    assert not hasattr(AutoencoderOutlierDetector(), "partial_fit")


def test_values_outside_a_bounded_output_are_flagged_with_a_true_warning():
    rng = np.random.RandomState(0)
    X = rng.uniform(0.2, 0.8, size=(200, 6))
    detector = AutoencoderOutlierDetector(random_state=0, max_iter=5).fit(X)
    assert detector.output_activation_ == "clip"
    outside = np.vstack([X[:5], np.full((1, 6), 3.0)])
    with pytest.warns(UserWarning, match="count in full in the reconstruction error"):
        scores = detector.score_samples(outside)
    # Values the output cannot reach make the sample an outlier, as the
    # warning says, not a meaningless score.
    assert scores[-1] < scores[:-1].min()
    with pytest.warns(UserWarning):
        assert detector.predict(outside)[-1] == -1


def test_auto_code_width_follows_the_rows_passed_to_fit_with_early_stopping():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 40))
    detector = AutoencoderOutlierDetector(early_stopping=True, max_iter=3, random_state=0)
    detector.fit(X)
    # min(32, 40 - ceil(sqrt(40)), 150 // 10) from all 150 rows, not the
    # 135 left for training.
    assert detector.n_components_ == 15


def test_auto_contamination_flags_a_few_percent_of_new_clean_samples():
    # As documented: about 4 % of new 5-dimensional Gaussian samples.
    rng = np.random.RandomState(0)
    detector = AutoencoderOutlierDetector(random_state=0).fit(rng.normal(size=(1000, 5)))
    flagged = np.mean(detector.predict(rng.normal(size=(1000, 5))) == -1)
    assert 0.01 <= flagged <= 0.08


def test_features_in_units_orders_of_magnitude_apart_weigh_alike():
    # A planted table in which each feature has its own unit: the raw
    # table scores as the standardised one does.
    X, y = planted()
    units = 10.0 ** np.random.RandomState(1).uniform(-3, 3, size=X.shape[1])
    raw = AutoencoderOutlierDetector(random_state=0).fit(X * units)
    scaled = AutoencoderOutlierDetector(random_state=0).fit(StandardScaler().fit_transform(X))
    raw_auc = roc_auc_score(y, -raw.score_samples(X * units))
    scaled_auc = roc_auc_score(y, -scaled.score_samples(StandardScaler().fit_transform(X)))
    assert raw_auc >= scaled_auc - 0.01
    assert raw_auc > 0.9


def test_neighbour_terms_are_those_of_scikit_learn():
    # The local outlier factor of the codes is LocalOutlierFactor's, the
    # distance term the mean distance to the n_neighbors nearest codes.
    X = np.random.RandomState(0).normal(size=(200, 6))
    detector = AutoencoderOutlierDetector(n_neighbors=15, **FAST).fit(X)
    new = np.random.RandomState(1).normal(size=(30, 6))
    codes = detector._codes(detector._scaled(new))
    terms = detector._terms(detector._scaled(new))
    lof = LocalOutlierFactor(n_neighbors=15, novelty=True).fit(detector._train_codes)
    np.testing.assert_allclose(terms[:, 1], -lof.score_samples(codes), rtol=1e-12)
    distances, _ = lof.kneighbors(codes, n_neighbors=15)
    np.testing.assert_allclose(terms[:, 2], distances.mean(axis=1), rtol=1e-12)


def mixed_unit_table(seed):
    """300 rows near a rank-3 mixture of two Gaussians in 12 features, 15 outliers
    of three kinds, each feature then in its own unit (1e-3 to 1e3) and offset."""
    rng = np.random.RandomState(seed)
    basis = rng.normal(size=(3, 12))
    centres = rng.normal(scale=2.0, size=(2, 12))
    inliers = rng.normal(size=(285, 3)) @ basis + 0.3 * rng.normal(size=(285, 12))
    inliers += centres[rng.randint(2, size=285)]
    # A tight cluster away from both clusters, scattered points in the box,
    # and points whose features each come from another inlier.
    cluster = 0.3 * rng.normal(size=(5, 3)) @ basis + centres[0] + 1.5 * inliers.std(axis=0)
    scattered = rng.uniform(inliers.min(axis=0), inliers.max(axis=0), size=(5, 12))
    shuffled = np.column_stack([rng.choice(column, 5) for column in inliers.T])
    X = np.vstack([inliers, cluster, scattered, shuffled])
    X = X * 10.0 ** rng.uniform(-3, 3, size=12) + 10.0 ** rng.uniform(-2, 4, size=12)
    return X, np.r_[np.zeros(285), np.ones(15)].astype(int)


def test_raw_table_in_mixed_units_scores_as_well_as_the_usual_detectors():
    aurocs = {"skae": [], "forest": [], "lof": []}
    for seed in range(3):
        X, y = mixed_unit_table(seed)
        detector = AutoencoderOutlierDetector(random_state=0).fit(X)
        aurocs["skae"].append(roc_auc_score(y, -detector.score_samples(X)))
        forest = IsolationForest(random_state=0).fit(X)
        aurocs["forest"].append(roc_auc_score(y, -forest.score_samples(X)))
        lof = LocalOutlierFactor().fit(X)
        aurocs["lof"].append(roc_auc_score(y, -lof.negative_outlier_factor_))
    means = {name: np.mean(values) for name, values in aurocs.items()}
    assert means["skae"] > 0.95
    assert means["skae"] >= max(means["forest"], means["lof"]) - 0.01
    # The units do not matter: the same table in common units scores alike.
    X, y = mixed_unit_table(0)
    scaled = StandardScaler().fit_transform(X)
    detector = AutoencoderOutlierDetector(random_state=0).fit(scaled)
    assert abs(roc_auc_score(y, -detector.score_samples(scaled)) - aurocs["skae"][0]) < 0.02


def test_feature_scale_is_robust_to_the_outliers_it_looks_for():
    # A feature whose standard deviation the outliers inflate 1.7-fold keeps
    # the inliers' spread; a mostly constant flag keeps its standard deviation.
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=500) * 1e3, (rng.rand(500) < 0.2).astype(float)])
    X[:10, 0] = 1e4
    assert X[:, 0].std() > 1600
    detector = AutoencoderOutlierDetector(**FAST).fit(X)
    assert 900 < detector._feature_scale[0] < 1100
    np.testing.assert_allclose(detector._feature_scale[1], X[:, 1].std())


@pytest.mark.parametrize(
    "name, make",
    [
        ("gaussian", lambda rng, n: rng.normal(size=(n, 5))),
        ("uniform", lambda rng, n: rng.uniform(size=(n, 5)) * [1, 10, 100, 1e3, 1e4]),
    ],
)
def test_auto_contamination_flags_what_the_docstring_says_on_clean_data(name, make):
    # The docstring's rates, fitted on 1,000 clean samples, predicting 1,000 more.
    documented = {"gaussian": 0.041, "uniform": 0.045}[name]
    rng = np.random.RandomState(0)
    detector = AutoencoderOutlierDetector(random_state=0).fit(make(rng, 1000))
    flagged = np.mean(detector.predict(make(rng, 1000)) == -1)
    assert abs(flagged - documented) < 0.02


def test_onnx_graph_scores_a_raw_table_in_mixed_units_as_the_detector_does():
    skl2onnx = pytest.importorskip("skl2onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("skae.onnx")
    # In float64: float32 cannot hold this table (a feature of unit 1e-3
    # offset by 1e4 keeps no digit of its variation).
    X, _ = mixed_unit_table(0)
    detector = AutoencoderOutlierDetector(**FAST).fit(X)
    assert not np.all(detector._feature_scale == 1)
    onx = skl2onnx.to_onnx(detector, X[:1], options={id(detector): {"score_samples": True}})
    session = onnxruntime.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    labels, _, scores = session.run(None, {session.get_inputs()[0].name: X})
    expected = detector.score_samples(X)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, rtol=1e-7, atol=1e-7)
    np.testing.assert_array_equal(labels, detector.predict(X))


def test_fit_warnings_point_at_the_caller(digits):
    # The detector's fit path is a frame deeper than the transformer's, and
    # fit_predict and a pipeline add scikit-learn's own frames.
    X, _ = digits
    for fit in (
        lambda: AutoencoderOutlierDetector(encoding_dim=48, loss="bce", random_state=0).fit(X),
        lambda: AutoencoderOutlierDetector(
            encoding_dim=48, loss="bce", random_state=0
        ).fit_predict(X),
        lambda: make_pipeline(
            AutoencoderOutlierDetector(encoding_dim=48, loss="bce", random_state=0)
        ).fit(X),
    ):
        with pytest.warns(UserWarning, match="sigmoid output cannot give") as record:
            fit()
        assert {warning.filename for warning in record} == {__file__}
