"""The ``skae`` command line: ``skae compare``."""

from skae._cli._main import main

__all__ = ["main"]
