"""Autoencoder as a scikit-learn transformer."""

from numbers import Integral

from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, RealNotInt

from skae._base import BaseAutoencoder
from skae._codes._transform import CodesMixin


class AutoencoderTransformer(
    CodesMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseAutoencoder
):
    """Dimensionality reduction with an autoencoder trained in PyTorch.

    An autoencoder is a neural network trained to reconstruct its input
    through a narrow layer, the code. ``transform`` returns the codes,
    ``inverse_transform`` the reconstructions, and ``score`` the negative
    mean squared reconstruction error, so that the estimator can stand in
    for :class:`~sklearn.decomposition.PCA` in a pipeline or a grid search.

    By default the network is the linear autoencoder of the classic MNIST
    tutorials, ``n_features -> encoding_dim -> n_features``, with one linear
    layer each way, its output clipped to [0, 1] when the training data lie
    in [0, 1], and started at PCA's solution: training begins where PCA
    ends, and the clipped output lets it go further.

    Parameters
    ----------
    encoding_dim : int or float, default=32
        Width of the code, the number of features ``transform`` returns. It
        may exceed the number of input features (an overcomplete code); PCA
        initialisation then covers as many units as the data have
        dimensions, and the others start with small random encoder weights
        and zero decoder weights. A float in
        (0, 1) is a share of the variance, as PCA's ``n_components``: the
        network is trained with ordered codes at PCA's number of components
        for that share, then cut to the fewest units whose reconstruction
        explains it on the training data (``n_components_``). With
        ``ordered_codes=False`` the unordered code is cut the same way, by
        what its first units explain, which may keep more of them.

    ordered_codes : {"auto", True, False}, default="auto"
        Whether to train ordered codes, like PCA's components: the first
        ``j`` units of the code reconstruct the data about as well as a
        model fitted at ``j``, the others held at their mean over the
        training rows, so that one fit gives a model at every size (see
        ``explained_variance_ratio_``). Each training row keeps the first
        units of its code up to a random one, the others replaced by the
        mini-batch's mean code (nested dropout); with early stopping the
        weights kept are those whose prefixes reconstruct the held-out rows
        that score the epochs best, relative to the start, if on the rows
        that judge them they beat it on average over the prefixes and lose
        at none; without early stopping, those whose prefixes reconstruct up
        to 2048 clean training rows best, with no such test, so that the
        first units may end a little worse than the start's while the
        others gain. "auto" is True where ordering costs nothing,
        for the linear autoencoder (no hidden layers) with a linear output
        (data outside [0, 1]) trained without ``noise``, whose start, PCA's
        solution, is ordered, and for a float ``encoding_dim``, which needs
        ordered codes; False otherwise. Elsewhere ordering costs the whole
        code part of its quality: with the output clipped to [0, 1] its
        error was 1.11 times an unordered fit's on digits at 16 units and
        1.21 times on MNIST at 32; with hidden layers, 1.2 to 2.2 times.

    hidden_layer_sizes : array-like of int, default=()
        Widths of hidden layers, outermost first; the decoder mirrors them.
        Started at PCA (``init="auto"`` or "pca", a linear code), they form
        a perceptron on each side of the linear path, ``n_features ->
        hidden -> encoding_dim`` added to the linear code and ``encoding_dim
        -> reversed hidden -> n_features`` added to the linear
        reconstruction, whose last layers start at zero: training begins
        exactly where PCA ends. With ``init="random"`` they are stacked as in
        the tutorials: ``(256, 64)`` with ``encoding_dim=16`` on 784 features
        builds 784-256-64-16-64-256-784.

    image_shape : tuple of int or None, default=None
        The shape of one image, ``(height, width)`` or ``(channels, height,
        width)``, when each row of X is an image raveled in that order (as
        ``images.reshape(len(images), -1)`` does); its product must be
        ``n_features``. With hidden layers started at PCA, the corrections
        beside the linear path are then convolutional: ``hidden_layer_sizes``
        gives the output channels of the encoder's convolutions (kernel 3,
        stride 2, each followed by a group normalisation and the
        activation, then a linear layer to the code), and the decoder
        mirrors them in transposed convolutions back to the image's shape.
        Training still starts exactly where PCA ends. None treats rows as
        vectors; so does a network without hidden layers, or one started at
        random. On MNIST, ``(16, 32)`` with ``batch_size=64`` reached a lower
        error than a dense correction of 256 units, in about three times the
        time an epoch; on small patches (8 x 8) the dense correction did
        better.

    activation : {"relu", "tanh", "logistic", "elu", "gelu", "identity"}, \
            default="relu"
        Activation of the hidden layers.

    code_activation : {"identity", "relu", "tanh", "logistic", "elu", \
            "gelu"}, default="identity"
        Activation of the code layer. The tutorials use "relu".

    output_activation : {"auto", "identity", "clip", "sigmoid"}, default="auto"
        Activation of the reconstruction. "clip" clamps a linear output to
        [0, 1]; "sigmoid" squashes it. "auto" is "clip" when the training
        data lie in [0, 1] ("sigmoid" with ``loss="bce"``) and "identity"
        otherwise. "clip" and "sigmoid"
        require training data in [0, 1]. Started from PCA, a clipped output
        reconstructs at least as well as PCA before any training; a sigmoid
        output is meant for the "bce" loss of the tutorials (it also trains
        with "mse"). It has no such start: close to the data's rank it
        cannot reconstruct as well as PCA, and ``fit`` warns where, started
        at PCA's axes, it explains clearly less of the variance.

    loss : {"mse", "bce"}, default="mse"
        Training loss: mean squared error, or binary cross-entropy, which
        requires training data in [0, 1] and a sigmoid output.

    init : {"auto", "pca", "random"}, default="auto"
        Initial weights. "pca" starts the network's linear path at the PCA
        solution of the training data (with hidden layers, beside
        perceptrons whose last layers start at zero); "random" builds the
        stacked network of the tutorials with Glorot-uniform weights.
        "auto" is "pca" for ``code_activation="identity"``, "random"
        otherwise.

    batch_size : int or "auto", default="auto"
        Mini-batch size. "auto" is ``min(200, max(32, ceil(n_samples /
        10)))`` for ``fit``, and at most ``n_samples``, so that data of fewer
        than 2,000 rows (after any validation split) get about ten
        mini-batches an epoch of at least 32 rows; ``partial_fit`` uses
        ``min(200, n_samples)`` of its first chunk. The size used is
        ``batch_size_``.

    max_iter : int or "auto", default="auto"
        Maximum number of epochs (passes over the training data). "auto"
        plans about 1000 mini-batch steps: ``round(1000 / n_batches)``
        epochs, at least 3 and at most 200; where the network starts at
        the optimum of its objective, as the linear autoencoder with a
        linear output does (PCA's solution; no ``noise``, ``alpha`` 0), one
        epoch that takes no step and records the start's loss.

    learning_rate_init : float, default=3e-3
        Adam's initial (peak, with "cosine") learning rate.

    learning_rate : {"cosine", "constant"}, default="cosine"
        Learning-rate schedule. "cosine" warms up linearly over the first
        tenth of the planned steps, then decays along a half cosine to zero
        at ``max_iter`` epochs (sooner, see ``n_iter_no_change``); the fit
        then ends as planned, without a
        :class:`~sklearn.exceptions.ConvergenceWarning`. "constant" keeps
        ``learning_rate_init`` and warns when ``max_iter`` ends the fit.

    alpha : float, default=0.0
        Strength of the L2 penalty on the weights, divided by the batch size
        when added to the loss, as in
        :class:`~sklearn.neural_network.MLPRegressor`.

    shuffle : bool, default=True
        Whether to shuffle the samples at each epoch.

    tol : float, default=1e-4
        Tolerance for the optimisation. When the training loss (or the
        validation score, with ``early_stopping``) does not improve by at
        least ``tol`` on the best so far for ``n_iter_no_change + 1``
        consecutive epochs, training stops, or with the "cosine" schedule
        runs the rest of it over at most ``n_iter_no_change`` more epochs
        and stops there. With a linear output ``tol`` is relative to the
        data's mean variance (the network's normalised units), so that it
        does not depend on the data's magnitude. With ``tol=0`` the
        epochs whose loss is above the best so far count, so a fit whose
        loss only rises above its start (the linear autoencoder with a
        linear output, which starts at PCA's optimum) still stops early;
        ``n_iter_no_change=np.inf`` never does.

    n_iter_no_change : int or np.inf, default=10
        Epochs without improvement by ``tol`` that training tolerates: at
        the next such epoch, the ``n_iter_no_change + 1``-th in a row, it
        stops, as :class:`~sklearn.neural_network.MLPRegressor` does with a
        constant rate. With "cosine" the rate, which may still be near its
        peak, decays to zero along the rest of its cosine over the next
        ``n_iter_no_change`` epochs (or those ``max_iter`` leaves), and
        training stops after them: weights trained at a high rate and kept
        as they were reconstruct worse. ``np.inf`` never stops early.

    early_stopping : bool or "auto", default="auto"
        Whether to hold out ``validation_fraction`` of the training data,
        stop when its reconstruction error stops improving, and keep the
        weights that scored best on it, if they beat the starting weights:
        every other held-out row scores the epochs, and the others judge
        the best epoch's weights by a one-sided paired t-test of their
        per-row gain over the start, at the 5% level (rows that chose an
        epoch flatter it). Otherwise the network starts again from all the
        rows.
        "auto" does so for a network with hidden layers beside its PCA
        path, where the data leave rows for both parts.

    validation_fraction : float, default=0.1
        Fraction of the training data held out with ``early_stopping``; at
        least 100 rows (a quarter of the rows on small data) are held out.

    noise : {"gaussian", "masking"} or None, default=None
        Corruption of the inputs during training, for a denoising
        autoencoder; the targets stay clean. "gaussian" adds noise of
        standard deviation ``noise_level``; "masking" sets a fraction
        ``noise_level`` of the inputs to zero.

    noise_level : float, default=0.1
        Standard deviation (gaussian) or rate (masking) of the corruption.

    warm_start : bool, default=False
        When set to True, reuse the network and optimiser of the previous
        call to fit as initialisation.

    random_state : int, RandomState instance or None, default=None
        Determines weight initialisation, the validation split, shuffling
        and corruption. Pass an int for reproducible results across calls:
        on CPU the codes are then bit-identical. The global numpy and torch
        random states are never used.

    device : str, default="cpu"
        Where to train: "cpu", "cuda", "cuda:<index>", "mps", or "auto"
        (CUDA, then MPS, then CPU, whichever is available first). The fitted
        network is kept on CPU, so that a model trained on a GPU loads and
        transforms on any machine.

    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Precision of the matrix products in training. "float32" trains a
        float32 network, on float64 data too (cast for training).
        "bfloat16" also trains a float32 network, keeping the weights, the
        optimizer's state and the loss in float32, and computes the products
        from a bfloat16 copy of the weights, made once a step. "auto" is
        "bfloat16" for a float32 network of over a million parameters on a
        CPU with AMX or a CUDA device that supports it, and the data's own
        precision otherwise: without a matrix engine, bfloat16 products are
        no faster than float32 ones. ``transform`` and the other methods
        compute in the network's precision and return the data's dtype.

    verbose : bool, default=False
        Whether to print progress, one line per epoch.

    Attributes
    ----------
    n_components_ : int
        Width of the code: ``encoding_dim``, or the number of units chosen
        for a float ``encoding_dim``.

    explained_variance_ratio_ : ndarray of shape (`n_components_`,)
        As PCA's: its cumulative sum at ``j`` is the share of the training
        data's variance that the first ``j`` units of the code reconstruct,
        the others held at their mean over the training rows (estimated on
        up to a few thousand training rows). For the linear autoencoder
        started at PCA it is PCA's with a linear output; with a clipped one
        it is at least PCA's at the start, and training, which shares the
        units among all the prefixes, can leave the first one or two below
        PCA's (digits / 16 at 16 units: by 0.015 and 0.010) as the later
        ones rise above it. Without ordered codes, the prefixes of the code
        have no special meaning, and its entries may be negative.

    components_ : ndarray of shape (`n_components_`, `n_features_in_`) or None
        Decoder weights of the network's linear path, one row per code unit:
        the whole decoder without hidden layers, and the linear path beside
        the perceptron or convolutional correction with hidden layers
        started at PCA. None for the stacked network of ``init="random"``
        with hidden layers. With ``init="pca"``, a linear or clipped output
        and no training, they are PCA's ``components_``.

    coefs_ : list of ndarray
        Weights of the network's layers, encoder first: a dense layer's of
        shape (n_inputs, n_outputs), as in
        :class:`~sklearn.neural_network.MLPRegressor`; with ``image_shape``,
        the convolutions' kernels as 4-d arrays and the group
        normalisations' scales as vectors, in torch's layout.

    intercepts_ : list of ndarray
        Bias vectors of the same layers.

    shift_ : ndarray of shape (`n_features_in_`,)
        Subtracted from the inputs inside the network: the training data's
        mean with a linear output, zeros otherwise.

    scale_ : float
        Divides the shifted inputs inside the network: the training data's
        root mean square deviation with a linear output, 1 otherwise.

    module_ : torch.nn.Module
        The trained network, on CPU, built from ``coefs_``, ``intercepts_``,
        ``shift_`` and ``scale_`` when first needed, and cached. Changes
        made to it affect this instance's ``transform`` and other methods,
        but not ``coefs_`` or ``intercepts_``, and are lost when the
        estimator is pickled, saved, cloned or refitted: do not modify it.

    output_activation_ : str
        The output activation used.

    init_ : str
        The initialisation used.

    ordered_codes_ : bool
        Whether the codes were trained ordered (``ordered_codes`` resolved).

    batch_size_ : int
        The mini-batch size used.

    max_iter_ : int
        The maximum number of epochs used.

    precision_ : {"float32", "float64", "bfloat16"}
        The precision of the matrix products in training.

    device_ : str
        The device training ran on, as resolved from ``device``: "cpu",
        "cuda", "cuda:1" or "mps", say.

    loss_curve_ : list of float
        Mean training loss per element over each epoch: the mean of its
        mini-batch losses, each computed with the weights of that step (of
        the truncated codes, with ordered codes).

    best_loss_ : float or None
        The minimum of ``loss_curve_``; None with ``early_stopping``.

    validation_scores_ : list of float or None
        Negative mean squared reconstruction error on the held-out rows that
        score the epochs (every other one) after each epoch; None without
        ``early_stopping``. With ordered
        codes, the starting weights' error times the mean, over the
        prefixes of 1, 2, 4, ... units and the whole code, of each prefix's
        error relative to the starting weights'.

    best_validation_score_ : float or None
        The best of ``validation_scores_``; None without ``early_stopping``.

    n_iter_ : int
        Number of epochs in ``loss_curve_``: the epochs run, less an epoch
        cut short by divergence, and after an interrupt only those up to
        the weights kept.

    t_ : int
        Number of training samples seen.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.decomposition.PCA : Linear dimensionality reduction, the
        baseline an autoencoder should beat.
    sklearn.neural_network.MLPRegressor : The training loop this estimator's
        parameters follow.

    Notes
    -----
    Training uses Adam on mini-batches, run by PyTorch on the chosen device.
    float32 input is trained in float32 and float64 input in float64, and
    ``transform`` returns the dtype it is given; pass float32 data for the
    fastest training. Sparse input is densified one mini-batch at a time.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skae import AutoencoderTransformer
    >>> X, _ = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> ae = AutoencoderTransformer(encoding_dim=8, random_state=0)
    >>> codes = ae.fit_transform(X)
    >>> codes.shape
    (1797, 8)
    >>> ae.inverse_transform(codes).shape
    (1797, 64)
    >>> ae.output_activation_
    'clip'

    A share of the variance, as for PCA:

    >>> ae = AutoencoderTransformer(encoding_dim=0.8, random_state=0).fit(X)
    >>> ae.n_components_
    11
    >>> bool(ae.explained_variance_ratio_.sum() >= 0.8)
    True
    """

    _parameter_constraints: dict = {
        **BaseAutoencoder._parameter_constraints,
        "encoding_dim": [
            Interval(Integral, 1, None, closed="left"),
            Interval(RealNotInt, 0, 1, closed="neither"),
        ],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
