"""Helpers shared by the displays: axes to draw on, names and lists."""


def axes_or_new(ax, caller):
    """``ax``, or the axes of a new figure when ``ax`` is None."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"{caller} requires matplotlib. You can install it with "
            "`pip install matplotlib`, or with skae's extra `pip install skae[plot]`."
        ) from error
    if ax is None:
        # The layout keeps tick labels and legends inside the figure; "compressed"
        # also does so for the fixed aspect ratio of images.
        _, ax = plt.subplots(layout="compressed")
    return ax, ax.figure


def as_list(value):
    """``value`` as a list: itself when a list or tuple, else a list of one."""
    return list(value) if isinstance(value, list | tuple) else [value]


def default_name(estimator):
    """The name of an estimator in legends and labels: its class name."""
    return estimator.__class__.__name__
