"""Sphinx configuration of skae's documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The gallery runs its examples on scikit-learn's digits unless the
environment variable ``SKAE_EXAMPLES_DATA`` says otherwise (``mnist``).
"""

import os

# Set before the examples run: digits keep the build quick and offline.
os.environ.setdefault("SKAE_EXAMPLES_DATA", "digits")
os.environ.setdefault("MPLBACKEND", "Agg")

import skae  # noqa: E402

project = "skae"
author = "The skae developers"
copyright = "The skae developers"
release = skae.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
default_role = "literal"

# API reference: one page per public object, numpydoc docstrings.
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Glossary terms and objects of other projects are plain text here: the
# build is offline, without intersphinx inventories.
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_static_path = ["_static"]
html_theme_options = {"description": "PyTorch autoencoders as scikit-learn transformers"}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "write_computation_times": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "doc_module": ("skae",),
    "backreferences_dir": None,
}
