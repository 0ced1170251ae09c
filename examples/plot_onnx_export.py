"""
===========================================
Serving a pipeline with ONNX, without torch
===========================================

A fitted :class:`~sklearn.pipeline.Pipeline` that holds an
:class:`~skae.AutoencoderTransformer` converts to an `ONNX
<https://onnx.ai>`_ graph with :func:`skl2onnx.to_onnx`, once
:mod:`skae.onnx` is imported. The graph runs in onnxruntime, or any other
ONNX runtime, on a machine without Python's scientific stack, torch or
skae: the usual way to serve scikit-learn models.

Here a pipeline reduces digit images with an autoencoder and classifies the
codes with a logistic regression; its ONNX graph is checked against the
pipeline, output by output, and timed against it.

The conversion needs the optional dependencies of the ``onnx`` extra:
``pip install "skae[onnx]"``.
"""

# %%
# Data
# ----
# MNIST when it is installed (a subset, to run in under a minute), and
# scikit-learn's digits otherwise or when ``SKAE_EXAMPLES_DATA=digits``.
# ONNX graphs usually run in float32, so the data are float32 from the start.
import os
from timeit import repeat

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime
import skl2onnx
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

import skae.onnx  # noqa: F401  (registers skae's converters with skl2onnx)
from skae import AutoencoderTransformer
from skae.datasets import load_digits, load_mnist

use_mnist = os.environ.get("SKAE_EXAMPLES_DATA", "mnist") == "mnist"
try:
    X, y = load_mnist(return_X_y=True) if use_mnist else load_digits(return_X_y=True)
except OSError:  # MNIST is not installed
    X, y = load_digits(return_X_y=True)
if X.shape[1] == 784:
    X, y = X[:4_000], y[:4_000]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=0)

# %%
# A pipeline
# ----------
# The autoencoder has a hidden layer, so that the graph holds more than a
# linear map: started at PCA's solution, the hidden layer learns a nonlinear
# correction beside it.
pipeline = Pipeline(
    [
        (
            "reduce",
            AutoencoderTransformer(encoding_dim=16, hidden_layer_sizes=(64,), random_state=0),
        ),
        ("classify", LogisticRegression(max_iter=1000)),
    ]
).fit(X_train, y_train)
print(f"test accuracy: {pipeline.score(X_test, y_test):.3f}")

# %%
# Conversion
# ----------
# :func:`skl2onnx.to_onnx` takes the pipeline and one row of data, from
# which it learns the input's dtype and width. The ``zipmap`` option of the
# classifier returns the probabilities as an array rather than a list of
# dictionaries. ``onx.SerializeToString()`` is what a model file holds:
# ``open("pipeline.onnx", "wb").write(onx.SerializeToString())``.
onx = skl2onnx.to_onnx(pipeline, X_train[:1], options={LogisticRegression: {"zipmap": False}})
print(f"{len(onx.SerializeToString()) / 1e3:.0f} kB, operators:")
print(sorted({node.op_type for node in onx.graph.node}))

# %%
# The same outputs
# ----------------
# onnxruntime runs the graph. The labels are the pipeline's; the
# probabilities differ by float32 rounding, the order of the sums inside
# the two runtimes' matrix products.
session = onnxruntime.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
labels, probabilities = session.run(None, {"X": X_test})
print(f"labels equal to the pipeline's: {np.mean(labels == pipeline.predict(X_test)):.2%}")
difference = np.abs(probabilities - pipeline.predict_proba(X_test)).max()
print(f"largest difference in probability: {difference:.1e}")

# %%
# The autoencoder alone converts as well, and its graph computes
# ``transform``: the codes.
ae = pipeline.named_steps["reduce"]
ae_session = onnxruntime.InferenceSession(
    skl2onnx.to_onnx(ae, X_train[:1]).SerializeToString(),
    providers=["CPUExecutionProvider"],
)
codes = ae_session.run(None, {"X": X_test})[0]
print(f"largest difference in the codes: {np.abs(codes - ae.transform(X_test)).max():.1e}")


# %%
# Time
# ----
# The best of a few runs of each, on all the test rows at once and on one
# row, as a server answering one request at a time sees them. On one row,
# the time of skae's input validation and of torch's dispatch dominates,
# which onnxruntime does not spend.
def best_time(function, number):
    return min(repeat(function, number=number, repeat=3)) / number


rows = {"all test rows": X_test, "one row": X_test[:1]}
times = {}
for name, data in rows.items():
    number = 3 if data.shape[0] > 1 else 30
    times[name] = {
        "skae transform": best_time(lambda data=data: ae.transform(data), number),
        "onnxruntime transform": best_time(
            lambda data=data: ae_session.run(None, {"X": data}), number
        ),
        "pipeline predict": best_time(lambda data=data: pipeline.predict(data), number),
        "onnxruntime pipeline": best_time(
            lambda data=data: session.run(None, {"X": data}), number
        ),
    }
    print(f"{name} ({data.shape[0]}):")
    for method, seconds in times[name].items():
        print(f"  {method:>22}: {seconds * 1e3:8.3f} ms")

fig, axes = plt.subplots(ncols=2, figsize=(9, 3), layout="constrained")
for ax, (name, row_times) in zip(axes, times.items(), strict=True):
    ax.barh(list(row_times), [seconds * 1e3 for seconds in row_times.values()])
    ax.set(title=f"{name} ({rows[name].shape[0]})", xlabel="milliseconds")
    ax.invert_yaxis()
axes[1].set_yticklabels([])
plt.show()
