"""``python -m skae``: the ``skae`` command line."""

from skae._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
