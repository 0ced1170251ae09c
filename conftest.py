import os

# scikit-learn's array API estimator check runs only when scipy is imported
# with array API support enabled; it must be set before the first import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
