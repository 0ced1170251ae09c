import sys

import matplotlib
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import StandardScaler

from skae import (
    AutoencoderTransformer,
    LossCurveDisplay,
    ReconstructionDisplay,
    ReconstructionErrorDisplay,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted(digits):
    """PCA and a briefly trained autoencoder on digits, both with 8 components."""
    X, _ = digits
    pca = PCA(n_components=8).fit(X)
    ae = AutoencoderTransformer(
        encoding_dim=8, max_iter=3, early_stopping=True, random_state=0
    ).fit(X)
    return pca, ae


def _window_extents(figure, artists):
    """The boxes of drawn artists, in the figure's pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [artist.get_window_extent(renderer) for artist in artists]


def _cell(mosaic, row, column, shape):
    height, width = shape
    top, left = row * (height + 1), column * (width + 1)
    return mosaic[top : top + height, left : left + width]


# ReconstructionDisplay


def test_reconstruction_display_holds_originals_and_both_reconstructions(digits, fitted):
    X, _ = digits
    pca, ae = fitted
    display = ReconstructionDisplay.from_estimator([pca, ae], X, n_images=5, name=["PCA", "AE"])
    mosaic = np.ma.filled(display.image_.get_array(), np.nan)
    assert mosaic.shape == (3 * 9 - 1, 5 * 9 - 1)
    np.testing.assert_allclose(_cell(mosaic, 0, 3, (8, 8)), X[3].reshape(8, 8))
    pca_reconstruction = pca.inverse_transform(pca.transform(X[:5]))
    ae_reconstruction = ae.inverse_transform(ae.transform(X[:5]))
    np.testing.assert_allclose(_cell(mosaic, 1, 4, (8, 8)), pca_reconstruction[4].reshape(8, 8))
    np.testing.assert_allclose(
        _cell(mosaic, 2, 0, (8, 8)), ae_reconstruction[0].reshape(8, 8), rtol=1e-6
    )
    labels = [label.get_text() for label in display.ax_.get_yticklabels()]
    assert labels == ["original", "PCA", "AE"]
    assert display.figure_ is display.ax_.figure
    # Gaps between images are blank.
    assert np.isnan(mosaic[8, :]).all() and np.isnan(mosaic[:, 8]).all()


@pytest.mark.parametrize("n_reconstructions", [2, 12])
def test_reconstruction_display_keeps_long_row_labels_inside_its_figure(
    digits, fitted, n_reconstructions
):
    # Wide mosaics (few rows) and tall ones (many rows) alike.
    X, _ = digits
    pca, ae = fitted
    estimators = [pca, ae] * (n_reconstructions // 2)
    names = [f"a tutorial autoencoder {i}" for i in range(n_reconstructions)]
    display = ReconstructionDisplay.from_estimator(estimators, X, n_images=10, name=names)
    figure = display.figure_.bbox
    for box in _window_extents(display.figure_, display.ax_.get_yticklabels()):
        assert figure.x0 <= box.x0 and box.x1 <= figure.x1, (box, figure)


def test_reconstruction_display_uses_given_axes_and_default_names(digits, fitted):
    X, _ = digits
    pca, _ = fitted
    fig, ax = plt.subplots()
    display = ReconstructionDisplay.from_estimator(pca, X, ax=ax)
    assert display.ax_ is ax and display.figure_ is fig
    assert [label.get_text() for label in ax.get_yticklabels()] == ["original", "PCA"]
    assert display.image_.get_array().shape == (2 * 9 - 1, 8 * 9 - 1)


def test_reconstruction_display_non_square_images(digits):
    X, _ = digits
    X = X[:, :60]
    pca = PCA(n_components=4).fit(X)
    with pytest.raises(ValueError, match="not a perfect square; pass image_shape"):
        ReconstructionDisplay.from_estimator(pca, X)
    display = ReconstructionDisplay.from_estimator(pca, X, image_shape=(6, 10), n_images=3)
    assert display.image_.get_array().shape == (2 * 7 - 1, 3 * 11 - 1)
    with pytest.raises(ValueError, match=r"image_shape=\(6, 6\) does not match the 60"):
        ReconstructionDisplay.from_estimator(pca, X, image_shape=(6, 6))


def test_reconstruction_display_rejects_unusable_estimators(digits):
    X, _ = digits
    kmeans = KMeans(n_clusters=3, n_init=1, random_state=0).fit(X)
    with pytest.raises(TypeError, match="KMeans has no inverse_transform method"):
        ReconstructionDisplay.from_estimator(kmeans, X)
    with pytest.raises(NotFittedError):
        ReconstructionDisplay.from_estimator(PCA(2), X)
    with pytest.raises(ValueError, match="n_images must be a positive integer"):
        ReconstructionDisplay.from_estimator(StandardScaler().fit(X), X, n_images=0)


def test_reconstruction_display_constructor_checks_shapes():
    images = np.zeros((2, 4))
    with pytest.raises(ValueError, match="must have the shape of the images"):
        ReconstructionDisplay(images, [np.zeros((3, 4))]).plot()
    with pytest.raises(ValueError, match="Got 2 names for 1 rows"):
        ReconstructionDisplay(images, [images], names=["a", "b"]).plot()
    display = ReconstructionDisplay(images, np.ones((2, 4))).plot()
    labels = [label.get_text() for label in display.ax_.get_yticklabels()]
    assert labels == ["original", "reconstruction 1"]


# LossCurveDisplay


def test_loss_curve_display_draws_training_and_validation(fitted):
    _, ae = fitted
    display = LossCurveDisplay.from_estimator(ae)
    np.testing.assert_allclose(display.line_.get_ydata(), ae.loss_curve_)
    np.testing.assert_array_equal(display.line_.get_xdata(), np.arange(1, ae.n_iter_ + 1))
    np.testing.assert_allclose(
        display.validation_line_.get_ydata(), -np.asarray(ae.validation_scores_)
    )
    assert display.validation_line_.get_color() == display.line_.get_color()
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert legend == [
        "AutoencoderTransformer (training MSE)",
        "AutoencoderTransformer (validation MSE)",
    ]
    assert display.ax_.get_ylabel() == "Mean squared error"


def test_loss_curve_display_is_in_the_data_units_its_label_names(digits):
    # The axis says "Mean squared error" beside errors measured in the data's
    # units: the loss curve must be in those units too, whatever the scale.
    X, _ = digits
    X = 1000.0 * X - 300.0
    ae = AutoencoderTransformer(
        encoding_dim=8, max_iter=5, early_stopping=True, random_state=0
    ).fit(X)
    mse = np.mean((ae.inverse_transform(ae.transform(X)) - X) ** 2)
    display = LossCurveDisplay.from_estimator(ae)
    assert display.ax_.get_ylabel() == "Mean squared error"
    assert 0.5 < display.line_.get_ydata()[-1] / mse < 2
    assert 0.5 < display.validation_line_.get_ydata()[-1] / mse < 2


def test_loss_curve_display_names_a_cross_entropy_loss(digits):
    X, _ = digits
    ae = AutoencoderTransformer(
        encoding_dim=4,
        output_activation="sigmoid",
        loss="bce",
        max_iter=2,
        early_stopping=True,
        random_state=0,
    ).fit(X)
    display = LossCurveDisplay.from_estimator(ae, name="bce")
    legend = [text.get_text() for text in display.ax_.get_legend().get_texts()]
    assert legend == ["bce (training BCE)", "bce (validation MSE)"]
    assert display.ax_.get_ylabel() == "Training BCE, validation MSE"
    display = LossCurveDisplay([0.7, 0.6], loss="bce").plot()
    assert display.ax_.get_ylabel() == "Binary cross-entropy"
    with pytest.raises(ValueError, match="loss must be one of 'mse', 'bce'; got 'l1'"):
        LossCurveDisplay([0.7, 0.6], loss="l1").plot()


def test_loss_curve_display_several_on_one_axes(digits):
    X, _ = digits
    first = AutoencoderTransformer(encoding_dim=2, max_iter=2, random_state=0).fit(X)
    display = LossCurveDisplay.from_estimator(first, name="2")
    assert display.validation_line_ is None
    second = LossCurveDisplay([0.3, 0.2, 0.1]).plot(ax=display.ax_, name="manual")
    assert second.ax_ is display.ax_
    assert len(display.ax_.get_lines()) == 2
    np.testing.assert_allclose(second.line_.get_ydata(), [0.3, 0.2, 0.1])


def test_loss_curve_display_needs_a_fitted_estimator():
    with pytest.raises(NotFittedError):
        LossCurveDisplay.from_estimator(AutoencoderTransformer())


# ReconstructionErrorDisplay


def test_reconstruction_error_display_measures_test_error(digits):
    X, _ = digits
    X_train, X_test = X[:1200], X[1200:]
    dims = [2, 4, 8]
    display = ReconstructionErrorDisplay.from_estimators(
        [PCA(), AutoencoderTransformer(max_iter=2, random_state=0)], X_train, X_test, dims=dims
    )
    pcas = [PCA(d).fit(X_train) for d in dims]
    expected = [np.mean((p.inverse_transform(p.transform(X_test)) - X_test) ** 2) for p in pcas]
    np.testing.assert_allclose(display.errors[0], expected, rtol=1e-5)
    assert np.all(np.diff(display.errors[0]) < 0)
    assert display.errors[1].shape == (3,) and np.all(display.errors[1] > 0)
    assert [line.get_label() for line in display.lines_] == ["PCA", "AutoencoderTransformer"]
    np.testing.assert_array_equal(display.lines_[0].get_xdata(), dims)


def test_reconstruction_error_display_checks_inputs(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="StandardScaler has neither an encoding_dim"):
        ReconstructionErrorDisplay.from_estimators([StandardScaler()], X, X, dims=[2])
    with pytest.raises(ValueError, match="one value per dimension"):
        ReconstructionErrorDisplay([1, 2], [[0.1, 0.2, 0.3]]).plot()
    with pytest.raises(ValueError, match="Got 1 names for 2 arrays"):
        ReconstructionErrorDisplay([1], [[0.1], [0.2]], names=["a"]).plot()


def test_displays_say_how_to_get_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install skae\[plot\]"):
        LossCurveDisplay([0.1, 0.05]).plot()
