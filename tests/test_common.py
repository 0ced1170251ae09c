"""scikit-learn's estimator checks, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skae import AutoencoderImputer, AutoencoderOutlierDetector, AutoencoderTransformer


@parametrize_with_checks(
    [
        AutoencoderTransformer(),
        AutoencoderTransformer(
            encoding_dim=2, hidden_layer_sizes=(8, 4), activation="tanh", early_stopping=True
        ),
        AutoencoderOutlierDetector(),
        AutoencoderOutlierDetector(contamination=0.1, hidden_layer_sizes=(8,), n_neighbors=5),
        AutoencoderImputer(),
        AutoencoderImputer(missing_values=-1, add_indicator=True, hidden_layer_sizes=(16,)),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
