import io
import os
import pathlib
import pickle
import re
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import skae
from conftest import DIVERGED, DIVERGING, principal_angle_sines
from skae import AutoencoderTransformer
from skae._nn._batches import inference_rows
from skae._nn._start import leading_eigenvectors

# Shapes and the transformer contract


def test_transform_shapes(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=32, random_state=0, max_iter=3)
    codes = ae.fit(X).transform(X)
    assert codes.shape == (X.shape[0], 32)
    assert ae.n_components_ == 32
    assert ae.components_.shape == (32, X.shape[1])
    reconstruction = ae.inverse_transform(codes)
    assert reconstruction.shape == X.shape


def test_fit_transform_equals_fit_then_transform(digits):
    X, _ = digits
    params = dict(encoding_dim=8, random_state=0, max_iter=3)
    codes = AutoencoderTransformer(**params).fit_transform(X)
    np.testing.assert_array_equal(codes, AutoencoderTransformer(**params).fit(X).transform(X))


def test_score_is_negative_reconstruction_error(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, random_state=0, max_iter=3).fit(X)
    reconstruction = ae.inverse_transform(ae.transform(X))
    per_sample = np.mean((reconstruction.astype(np.float64) - X) ** 2, axis=1)
    np.testing.assert_allclose(ae.score_samples(X), -per_sample, rtol=1e-4)
    np.testing.assert_allclose(ae.score(X), -per_sample.mean(), rtol=1e-4)
    assert ae.score_samples(X).shape == (X.shape[0],)


def test_feature_names_out():
    X = np.random.RandomState(0).normal(size=(50, 6))
    ae = AutoencoderTransformer(encoding_dim=3, max_iter=2).fit(X)
    names = ae.get_feature_names_out()
    assert list(names) == [f"autoencodertransformer{i}" for i in range(3)]


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_set_output_frames(library):
    lib = pytest.importorskip(library)
    X = np.random.RandomState(0).normal(size=(50, 4))
    frame = lib.DataFrame({f"col{i}": X[:, i] for i in range(4)})
    ae = AutoencoderTransformer(encoding_dim=2, max_iter=2, random_state=0)
    ae.set_output(transform=library)
    out = ae.fit_transform(frame)
    assert isinstance(out, lib.DataFrame)
    assert list(out.columns) == ["autoencodertransformer0", "autoencodertransformer1"]
    assert list(ae.feature_names_in_) == ["col0", "col1", "col2", "col3"]


# Pipelines and model selection


def test_grid_search_encoding_dim_in_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(
        StandardScaler(),
        AutoencoderTransformer(max_iter=5, random_state=0),
        LogisticRegression(max_iter=300),
    )
    grid = GridSearchCV(pipe, {"autoencodertransformer__encoding_dim": [4, 16]}, cv=3)
    grid.fit(X, y)
    assert grid.best_params_["autoencodertransformer__encoding_dim"] == 16
    assert grid.best_score_ > 0.85


def test_grid_search_pca_or_autoencoder(digits):
    """The 'reduce_dim' pattern of scikit-learn's pipeline example."""
    X, y = digits
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("reduce_dim", "passthrough"),
            ("classify", LogisticRegression(max_iter=300)),
        ]
    )
    param_grid = [
        {"reduce_dim": [PCA()], "reduce_dim__n_components": [8, 16]},
        {
            "reduce_dim": [AutoencoderTransformer(max_iter=5, random_state=0)],
            "reduce_dim__encoding_dim": [8, 16],
        },
    ]
    grid = GridSearchCV(pipe, param_grid, cv=3).fit(X, y)
    results = grid.cv_results_
    assert len(results["params"]) == 4
    assert np.all(results["mean_test_score"] > 0.8)


def test_unsupervised_grid_search_prefers_larger_code(digits):
    X, _ = digits
    grid = GridSearchCV(
        AutoencoderTransformer(max_iter=5, random_state=0), {"encoding_dim": [2, 8, 24]}, cv=3
    )
    grid.fit(X)
    assert grid.best_params_ == {"encoding_dim": 24}
    scores = grid.cv_results_["mean_test_score"]
    assert scores[0] < scores[1] < scores[2] < 0


# Quality on data with a known answer


def test_low_rank_data_reconstructed_to_noise_level(low_rank):
    X, noise_level = low_rank
    ae = AutoencoderTransformer(encoding_dim=3, random_state=0, max_iter=30).fit(X)
    assert ae.output_activation_ == "identity"
    assert -ae.score(X) < 1.1 * noise_level
    pca = PCA(3).fit(X)
    sines = principal_angle_sines(ae.components_, pca.components_)
    assert sines.max() < 0.05


@pytest.mark.parametrize("init, bound", [("pca", 1.05), ("random", 1.6)])
def test_linear_autoencoder_spans_pca_subspace(low_rank, init, bound):
    X, noise_level = low_rank
    ae = AutoencoderTransformer(
        encoding_dim=3,
        init=init,
        random_state=0,
        batch_size=50,
        max_iter=300,
        learning_rate_init=1e-2,
        tol=0,
        n_iter_no_change=300,
    )
    ae.fit(X)
    assert -ae.score(X) < bound * noise_level
    pca = PCA(3).fit(X)
    assert principal_angle_sines(ae.components_, pca.components_).max() < 0.1


def test_loss_decreases(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=16, init="random", random_state=0, max_iter=10)
    ae.fit(X)
    curve = ae.loss_curve_
    assert len(curve) == ae.n_iter_ == 10
    assert curve[-1] < 0.5 * curve[0]
    assert ae.best_loss_ == min(curve)
    assert ae.validation_scores_ is None and ae.best_validation_score_ is None


@pytest.mark.parametrize("encoding_dim", [4, 16, 48])
def test_default_autoencoder_beats_pca_on_digits(digits, encoding_dim):
    X, _ = digits
    X_train, X_test = X[:1400], X[1400:]
    pca = PCA(encoding_dim).fit(X_train)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X_test)) - X_test) ** 2)
    ae = AutoencoderTransformer(encoding_dim=encoding_dim, random_state=0).fit(X_train)
    assert ae.output_activation_ == "clip" and ae.init_ == "pca"
    assert not ae.ordered_codes_
    assert -ae.score(X_test) < 0.95 * pca_error
    # Ordered codes give up some of the whole code's gain for its prefixes'.
    ordered = AutoencoderTransformer(encoding_dim, ordered_codes=True, random_state=0)
    assert -ordered.fit(X_train).score(X_test) < 0.97 * pca_error


def test_clipped_pca_start_is_never_worse_than_pca(digits):
    X, _ = digits
    pca = PCA(8).fit(X)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    ae = AutoencoderTransformer(encoding_dim=8, learning_rate_init=1e-12, max_iter=1)
    ae.fit(X)
    assert -ae.score(X) <= pca_error * (1 + 1e-4)
    sines = principal_angle_sines(ae.components_, pca.components_)
    assert sines.max() < 1e-3


def test_sigmoid_start_fits_decoder_by_logistic_regression(digits):
    """With a sigmoid output, PCA's encoder and a fitted decoder beat PCA."""
    X, _ = digits
    pca = PCA(8).fit(X)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    ae = AutoencoderTransformer(
        encoding_dim=8, output_activation="sigmoid", learning_rate_init=1e-12, max_iter=1
    )
    ae.fit(X)
    assert ae.init_ == "pca"
    assert -ae.score(X) < 0.97 * pca_error


def test_tutorial_configuration(digits):
    """The MNIST tutorials' model: ReLU code, sigmoid output, BCE, Adam 1e-3."""
    X, _ = digits
    ae = AutoencoderTransformer(
        encoding_dim=32,
        code_activation="relu",
        output_activation="sigmoid",
        loss="bce",
        learning_rate_init=1e-3,
        batch_size=200,
        max_iter=20,
        learning_rate="constant",
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning):
        ae.fit(X)
    assert ae.init_ == "random" and ae.batch_size_ == 200
    layers = [type(m).__name__ for m in ae.module_.modules()][1:]
    assert layers == ["Sequential", "Linear", "ReLU", "Sequential", "Linear"]
    assert [coef.shape for coef in ae.coefs_] == [(64, 32), (32, 64)]
    reconstruction = ae.inverse_transform(ae.transform(X))
    assert reconstruction.min() >= 0 and reconstruction.max() <= 1
    assert ae.loss_curve_[-1] < 0.7 * ae.loss_curve_[0]
    variance = np.mean((X - X.mean(axis=0)) ** 2)
    assert -ae.score(X) < 0.7 * variance


def test_deeper_network_shapes(digits):
    X, _ = digits
    ae = AutoencoderTransformer(
        encoding_dim=4, hidden_layer_sizes=(32, 16), init="random", max_iter=2
    )
    ae.fit(X)
    widths = [coef.shape for coef in ae.coefs_]
    assert widths == [(64, 32), (32, 16), (16, 4), (4, 16), (16, 32), (32, 64)]
    biases = [intercept.shape for intercept in ae.intercepts_]
    assert biases == [(32,), (16,), (4,), (16,), (32,), (64,)]
    assert ae.components_ is None and ae.init_ == "random"


def test_hidden_layers_beside_a_pca_start(digits):
    # A linear code with hidden layers: PCA's linear path, with perceptrons
    # through the hidden layers beside it on each side.
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, hidden_layer_sizes=(32, 16), max_iter=2)
    ae.fit(X)
    assert ae.init_ == "pca" and ae.components_.shape == (4, 64)
    widths = [coef.shape for coef in ae.coefs_]
    assert widths == [(64, 4), (64, 32), (32, 16), (16, 4), (4, 64), (4, 16), (16, 32), (32, 64)]


def test_overcomplete_code():
    X = np.random.RandomState(0).rand(100, 5)
    ae = AutoencoderTransformer(encoding_dim=12, random_state=0, max_iter=5)
    codes = ae.fit_transform(X)
    assert codes.shape == (100, 12)
    assert np.isfinite(codes).all()


# Training behaviour


def test_early_stopping_stops_and_keeps_best(digits):
    X, _ = digits
    ae = AutoencoderTransformer(
        encoding_dim=8,
        early_stopping=True,
        n_iter_no_change=2,
        tol=1e-2,
        max_iter=100,
        random_state=0,
    ).fit(X)
    assert ae.n_iter_ < 100
    assert len(ae.validation_scores_) == ae.n_iter_
    assert ae.best_validation_score_ == max(ae.validation_scores_)
    assert ae.best_loss_ is None


def test_max_iter_ending_fit_warns(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, max_iter=2, tol=0, learning_rate="constant")
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        ae.fit(X)
    # A cosine schedule plans to end at max_iter: no warning.
    ae.set_params(learning_rate="cosine").fit(X)
    assert ae.n_iter_ == 2


def test_verbose_prints_one_line_per_epoch(digits, capsys):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, max_iter=3, verbose=True, tol=0)
    ae.fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"Iteration 3, loss = \d\.\d{8}", lines[-1])


def test_warm_start_continues(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, max_iter=2, tol=0, warm_start=True)
    ae.fit(X)
    first = ae.module_
    ae.fit(X)
    assert ae.n_iter_ == 4 and len(ae.loss_curve_) == 4
    assert ae.module_ is not first


def test_keyboard_interrupt_keeps_best_weights(digits, interrupt_at):
    X, _ = digits
    interrupt_at(3 * 9 + 4)  # in the fourth epoch of 9 batches
    # Unordered: the training loss is then the reconstruction error.
    ae = AutoencoderTransformer(encoding_dim=8, max_iter=50, ordered_codes=False, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        ae.fit(X)
    assert ae.n_iter_ == 3
    assert np.isfinite(ae.transform(X)).all()
    np.testing.assert_allclose(-ae.score(X), ae.best_loss_, rtol=0.1)


def test_interrupt_in_first_epoch_keeps_starting_weights(digits, interrupt_at):
    X, _ = digits
    interrupt_at(1)
    ae = AutoencoderTransformer(encoding_dim=8, random_state=0)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        ae.fit(X)
    assert ae.n_iter_ == 0 and ae.best_loss_ is None
    pca = PCA(8).fit(X)
    pca_error = np.mean((pca.inverse_transform(pca.transform(X)) - X) ** 2)
    assert -ae.score(X) <= pca_error * (1 + 1e-4)


def test_tol_does_not_depend_on_magnitude(low_rank):
    X, _ = low_rank
    runs = [
        AutoencoderTransformer(
            encoding_dim=2, learning_rate="constant", max_iter=40, tol=1e-3, random_state=0
        )
        for _ in range(2)
    ]
    for ae, factor in zip(runs, [1e-3, 1e3], strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ae.fit(X * factor)
    assert runs[0].n_iter_ == runs[1].n_iter_ < 40


def test_later_chunks_must_fit_the_unit_interval(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4).partial_fit(X)
    with pytest.raises(ValueError, match=r"built for data in \[0, 1\]"):
        ae.partial_fit(X - 0.5)
    assert ae.n_iter_ == 1


def test_partial_fit_draws_on_across_calls(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, random_state=0).partial_fit(X)
    first = ae._generator_state.copy()
    ae.partial_fit(X)
    assert not np.array_equal(first, ae._generator_state)
    again = AutoencoderTransformer(encoding_dim=4, random_state=0).partial_fit(X)
    np.testing.assert_array_equal(first, again._generator_state)


# Data types, sparse input, determinism, persistence


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_preserved(digits, dtype):
    X = digits[0].astype(dtype)
    ae = AutoencoderTransformer(encoding_dim=4, max_iter=2, tol=1)
    ae.fit(X)
    assert ae.transform(X).dtype == dtype
    assert ae.inverse_transform(ae.transform(X)).dtype == dtype
    assert all(p.dtype == torch.from_numpy(X).dtype for p in ae.module_.parameters())


_PEAK_MEMORY = """
import resource, sys
import numpy as np
from skae import AutoencoderTransformer

def peak():
    unit = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit

X = np.random.default_rng(0).random((400_000, 50), dtype=np.float32)
params = dict(encoding_dim=8, max_iter=1, tol=1)
# A first, small fit loads torch's kernels and sets up its allocator.
AutoencoderTransformer(**params).fit(X[:20_000]).transform(X[:20_000])
start = peak()
ae = AutoencoderTransformer(**params).fit(X)
fitted = peak()
codes = ae.transform(X)
assert codes.dtype == np.float32
print(X.nbytes, fitted - start, peak() - start)
"""


def test_float32_fit_makes_no_copy_of_the_data():
    # The peak memory of a process of its own sees the allocations of torch
    # as well as numpy's; tracemalloc sees numpy's only. A copy of the data
    # of any dtype (80 MB in float32) would raise the peak by at least 80 MB.
    pytest.importorskip("resource")
    root = pathlib.Path(skae.__file__).parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    n_bytes, fit_growth, transform_growth = map(int, result.stdout.split())
    # The codes of transform (13 MB) and its passes of rows are all it needs.
    assert fit_growth < n_bytes / 4
    assert transform_growth < n_bytes / 2


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_trained_batch_by_batch(digits, fmt, monkeypatch):
    X = digits[0]
    X_sparse = sp.random(400, 64, density=0.2, format=fmt, random_state=0, dtype=np.float32)
    densified = []
    toarray = sp.csr_matrix.toarray

    def recording_toarray(self, *args, **kwargs):
        densified.append(self.shape[0])
        return toarray(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", recording_toarray)
    ae = AutoencoderTransformer(encoding_dim=4, batch_size=50, max_iter=2, tol=1)
    ae.fit(X_sparse)
    # Each epoch densifies its mini-batches one at a time; any other pass
    # over the data (the loss of the starting weights) densifies at most the
    # rows of one inference pass.
    batches = [n_rows for n_rows in densified if n_rows <= 50]
    assert sum(batches) == ae.n_iter_ * 400 == 800
    assert max(densified) <= inference_rows(64, np.float32)
    codes = ae.transform(X_sparse)
    dense_codes = ae.transform(X_sparse.toarray())
    np.testing.assert_allclose(codes, dense_codes, rtol=1e-5, atol=1e-6)
    assert X.dtype == codes.dtype


def test_sparse_and_dense_input_train_alike():
    X = sp.random(300, 20, density=0.3, format="csr", random_state=0) * 5
    X.data -= 1
    params = dict(encoding_dim=3, random_state=0, max_iter=3)
    dense = AutoencoderTransformer(**params).fit(X.toarray())
    sparse = AutoencoderTransformer(**params).fit(X)
    assert sparse.output_activation_ == "identity"
    np.testing.assert_allclose(sparse.scale_, dense.scale_)
    np.testing.assert_allclose(sparse.transform(X), dense.transform(X.toarray()), atol=1e-6)


@pytest.mark.parametrize("magnitude", [1e-100, 1e100])
def test_extreme_magnitudes(low_rank, magnitude):
    X, noise_level = low_rank
    ae = AutoencoderTransformer(encoding_dim=3, random_state=0, max_iter=5).fit(X * magnitude)
    codes = ae.transform(X * magnitude)
    assert np.isfinite(codes).all()
    assert -ae.score(X * magnitude) / magnitude**2 < 1.1 * noise_level


@pytest.mark.parametrize("magnitude", [1e-200, 1e200])
def test_unrepresentable_magnitudes_are_refused(low_rank, magnitude):
    X, _ = low_rank
    ae = AutoencoderTransformer(encoding_dim=3)
    with pytest.raises(ValueError, match="cannot be represented in float64. Rescale X"):
        ae.fit(X * magnitude)
    assert not hasattr(ae, "n_features_in_")


def test_same_random_state_gives_identical_codes(digits):
    X, _ = digits
    params = dict(encoding_dim=8, max_iter=3, tol=1, random_state=7)
    a = AutoencoderTransformer(**params).fit(X).transform(X)
    b = AutoencoderTransformer(**params).fit(X).transform(X)
    np.testing.assert_array_equal(a, b)
    c = AutoencoderTransformer(**{**params, "random_state": 8, "init": "random"}).fit(X)
    assert not np.array_equal(a, c.transform(X))


def test_global_random_state_untouched(digits):
    X, _ = digits
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()
    for random_state in (0, None):
        ae = AutoencoderTransformer(
            encoding_dim=4, init="random", max_iter=2, tol=1, random_state=random_state
        )
        ae.fit(X).transform(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)


def test_pickle_and_joblib_round_trip(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, max_iter=2, tol=1, random_state=0).fit(X)
    expected = ae.transform(X)
    restored = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(restored.transform(X), expected)
    buffer = io.BytesIO()
    joblib.dump(ae, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).transform(X), expected)
    assert all(p.device.type == "cpu" for p in ae.module_.parameters())


def test_fit_does_not_change_parameters(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, max_iter=2, tol=1)
    before = clone(ae).get_params()
    ae.fit(X)
    assert ae.get_params() == before


# Bad input


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_input_rejected(value):
    X = np.random.RandomState(0).rand(20, 3)
    X[3, 1] = value
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        AutoencoderTransformer().fit(X)


def test_wrong_number_of_features_at_transform(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, max_iter=1, tol=1).fit(X)
    with pytest.raises(ValueError, match="X has 10 features, but AutoencoderTransformer"):
        ae.transform(X[:, :10])
    with pytest.raises(ValueError, match="X has 3 features, but AutoencoderTransformer decodes"):
        ae.inverse_transform(np.zeros((2, 3)))


def test_one_dimensional_and_empty_input():
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        AutoencoderTransformer().fit(np.arange(5.0))
    with pytest.raises(ValueError, match="0 sample"):
        AutoencoderTransformer().fit(np.empty((0, 3)))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"encoding_dim": 0}, "'encoding_dim' parameter of AutoencoderTransformer must be"),
        ({"learning_rate_init": -1.0}, "'learning_rate_init' parameter"),
        ({"loss": "mae"}, "'loss' parameter"),
        ({"device": "tpu"}, "'device' parameter of AutoencoderTransformer must be"),
        ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
    ],
)
def test_invalid_parameters(params, match):
    X = np.random.RandomState(0).rand(20, 3)
    ae = AutoencoderTransformer(**params)
    with pytest.raises(InvalidParameterError, match=match):
        ae.fit(X)
    with pytest.raises(NotFittedError):
        ae.transform(X)


def test_bce_and_sigmoid_need_unit_interval_data():
    X = np.random.RandomState(0).normal(size=(30, 4))
    with pytest.raises(ValueError, match=r"loss='bce' requires training data in \[0, 1\]"):
        AutoencoderTransformer(loss="bce").fit(X)
    with pytest.raises(ValueError, match=r"output_activation='sigmoid' produces values"):
        AutoencoderTransformer(output_activation="sigmoid").fit(X)
    with pytest.raises(ValueError, match="loss='bce' requires output_activation='sigmoid'"):
        X_unit = (X - X.min()) / (X.max() - X.min())
        AutoencoderTransformer(loss="bce", output_activation="identity").fit(X_unit)


def test_bce_loss_picks_a_sigmoid_output(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=4, loss="bce", max_iter=1).fit(X)
    assert ae.output_activation_ == "sigmoid"


def _clipped_pca_error(X, n_components):
    pca = PCA(n_components).fit(X)
    return np.mean((np.clip(pca.inverse_transform(pca.transform(X)), 0, 1) - X) ** 2)


def test_sigmoid_output_far_below_pca_warns(digits):
    """Near the data's rank a sigmoid output cannot reconstruct as PCA does, and says so."""
    X, _ = digits
    message = r"code's 48 units reconstruct 0\.9\d\d .* PCA's 48 components, clipped"
    with pytest.warns(UserWarning, match=message) as record:
        ae = AutoencoderTransformer(encoding_dim=48, loss="bce", random_state=0).fit(X)
    assert record[0].filename == __file__
    assert -ae.score(X) > 5 * _clipped_pca_error(X, 48)
    # The clipped output, started at PCA's solution, stays below it.
    ae = AutoencoderTransformer(encoding_dim=48, random_state=0).fit(X)
    assert -ae.score(X) <= _clipped_pca_error(X, 48)


def test_share_the_code_cannot_reach_keeps_every_unit_and_warns(digits):
    """A share PCA's count reaches but the trained code does not: all units, a warning."""
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=0.99, loss="bce", random_state=0)
    with pytest.warns(UserWarning) as record:
        ae.fit(X)
    shortfall = [w for w in record if "less than asked; all of them are kept" in str(w.message)]
    assert len(shortfall) == 1 and shortfall[0].filename == __file__
    assert ae.n_components_ == PCA(0.99).fit(X).n_components_
    assert ae.explained_variance_ratio_.sum() < 0.99


def test_sigmoid_output_above_pca_does_not_warn(digits):
    X, _ = digits
    # Warnings are errors in the test suite.
    ae = AutoencoderTransformer(encoding_dim=8, loss="bce", random_state=0).fit(X)
    assert -ae.score(X) < _clipped_pca_error(X, 8)


@pytest.mark.parametrize("sizes", [("a",), (2.5,), (True,), (0,), [[2, 3]]])
def test_hidden_layer_sizes_must_be_positive_integers(sizes):
    X = np.random.RandomState(0).rand(30, 4)
    ae = AutoencoderTransformer(hidden_layer_sizes=sizes)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be a sequence of positive"):
        ae.fit(X)
    assert not hasattr(ae, "n_features_in_")


def test_pca_init_with_hidden_layers_needs_a_linear_code(digits, interrupt_at):
    X = np.random.RandomState(0).rand(30, 4)
    with pytest.raises(ValueError, match="init='pca' with hidden layers needs code_activation"):
        AutoencoderTransformer(init="pca", hidden_layer_sizes=(3,), code_activation="relu").fit(X)
    # With a linear code, training starts exactly where PCA ends (clipped to
    # [0, 1], the output for digits).
    X, _ = digits
    interrupt_at(1)
    ae = AutoencoderTransformer(encoding_dim=8, init="pca", hidden_layer_sizes=(16,))
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        ae.fit(X)
    pca = PCA(8).fit(X)
    expected = np.clip(pca.inverse_transform(pca.transform(X)), 0, 1)
    np.testing.assert_allclose(ae.inverse_transform(ae.transform(X)), expected, atol=1e-4)


def test_diverging_training_warns_and_keeps_the_starting_weights(digits, interrupt_at):
    X, _ = digits
    ae = AutoencoderTransformer(activation="relu", max_iter=5, random_state=0, **DIVERGING)
    with pytest.warns(ConvergenceWarning, match=DIVERGED + ".* smaller learning_rate_init"):
        ae.fit(X)
    assert ae.n_iter_ == 0 and ae.loss_curve_ == [] and ae.t_ == 0
    # The weights are those a fit stopped before its first step keeps.
    interrupt_at(1)
    with pytest.warns(UserWarning, match="Training interrupted by user"):
        start = clone(ae).fit(X)
    np.testing.assert_array_equal(ae.transform(X), start.transform(X))


def test_unavailable_cuda_device_is_reported():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    X = np.random.RandomState(0).rand(20, 3)
    with pytest.raises(ValueError, match="CUDA is not available"):
        AutoencoderTransformer(device="cuda").fit(X)
    ae = AutoencoderTransformer(encoding_dim=2, device="auto", max_iter=1, tol=1).fit(X)
    assert ae.device_ in ("cpu", "mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_is_stored_on_cpu(digits):
    X, _ = digits
    ae = AutoencoderTransformer(encoding_dim=8, device="cuda", max_iter=3, tol=1).fit(X)
    assert ae.device_ == "cuda"
    assert all(p.device.type == "cpu" for p in ae.module_.parameters())
    restored = pickle.loads(pickle.dumps(ae))
    np.testing.assert_array_equal(restored.transform(X), ae.transform(X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_components", [1, 16, 64])
def test_pca_start_has_the_axes_and_signs_pca_finds(digits, dtype, n_components):
    X = digits[0].astype(dtype)
    pca = PCA(n_components, svd_solver="covariance_eigh").fit(X)
    mean, components, variances = leading_eigenvectors(X, n_components)
    assert components.dtype == dtype
    np.testing.assert_allclose(mean, pca.mean_, rtol=1e-6)
    # Digits' last eigenvalues are zero (constant pixels): their axes are
    # any basis of that space, so compare the subspace beyond the leading 50.
    leading = min(n_components, 50)
    atol = 1e-3 if dtype == np.float32 else 1e-8
    np.testing.assert_allclose(components[:leading], pca.components_[:leading], atol=atol)
    np.testing.assert_allclose(components @ components.T, np.eye(n_components), atol=atol)
    np.testing.assert_allclose(
        variances[:leading], pca.explained_variance_[:leading], rtol=1e-4, atol=1e-6
    )
