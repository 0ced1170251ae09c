"""What ``skae compare`` shows: progress, the table, the summary, the files, the figures."""

import csv
import json
import math
import time

from skae._plot import LossCurveDisplay, ReconstructionDisplay, ReconstructionErrorDisplay
from skae._plot._compare import TIE_RELATIVE_TOLERANCE, TIE_STANDARD_ERRORS, format_ratio


class Progress:
    """A progress bar redrawn in place on a terminal; elsewhere, one line per step done."""

    def __init__(self, total, stream, *, enabled=True, width=24):
        self.total = total
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.start = time.perf_counter()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.done = 0

    def show(self, done, message):
        """Show that ``done`` of ``total`` steps are done, and what runs now."""
        if not self.enabled or (not self.tty and done == self.done):
            return
        self.done = done
        filled = round(self.width * done / self.total)
        elapsed = time.perf_counter() - self.start
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} "
            f"{message} ({elapsed:.1f} s)"
        )
        if self.tty:
            end = "\n" if done == self.total else ""
            self.stream.write(f"\r\x1b[K{line}{end}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _number(value, fmt):
    return "" if value is None else fmt.format(value)


# Result key, column title, and how a value is written.
COLUMNS = (
    ("encoding_dim", "encoding_dim", str),
    ("model", "model", str),
    ("test_mse", "test MSE", lambda value: _number(value, "{:.4g}")),
    ("mse_ratio", "vs PCA", lambda value: "" if value is None else format_ratio(value)),
    ("verdict", "verdict", lambda value: value or ""),
    ("fit_time", "fit (s)", lambda value: _number(value, "{:.2f}")),
    ("n_iter", "epochs", lambda value: _number(value, "{}")),
)

TIE_RULE = (
    f"A tie: the test errors differ by less than {TIE_RELATIVE_TOLERANCE:.1%} of PCA's, "
    f"or by less than {TIE_STANDARD_ERRORS:g} standard errors over the test samples."
)


def table(rows):
    """The results as text, right-aligned columns under a header."""
    cells = [[title for _, title, _ in COLUMNS]]
    cells += [[write(row[key]) for key, _, write in COLUMNS] for row in rows]
    widths = [max(len(line[j]) for line in cells) for j in range(len(COLUMNS))]
    lines = []
    for line in cells:
        text = "  ".join(
            cell.ljust(width) if j in (1, 4) else cell.rjust(width)
            for j, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        lines.append(text.rstrip())
    return "\n".join(lines)


def _dims_text(dims):
    return ", ".join(map(str, dims))


def summary(rows, models):
    """One line per autoencoder: where it beats PCA, ties with it and loses to it."""
    lines = []
    for name in models[1:]:
        own = [row for row in rows if row["model"] == name]
        parts = []
        for verdict, words in (
            ("better", "better than PCA"),
            ("tie", "a tie with PCA"),
            ("worse", "worse than PCA"),
        ):
            dims = [row["encoding_dim"] for row in own if row["verdict"] == verdict]
            if len(dims) == len(own):
                parts.append(f"{words} at every encoding_dim")
            elif dims:
                parts.append(f"{words} at encoding_dim {_dims_text(dims)}")
        lines.append(f"{name}: {'; '.join(parts)}.")
        not_converged = [row["encoding_dim"] for row in own if row["converged"] is False]
        if not_converged:
            lines.append(
                f"{name} reached max_iter before converging at encoding_dim "
                f"{_dims_text(not_converged)}; a larger --max-iter may lower its error."
            )
    lines.append(TIE_RULE)
    return "\n".join(lines)


def _finite_or_none(value):
    """JSON has no infinity: a non-finite number is written as null."""
    return value if not isinstance(value, float) or math.isfinite(value) else None


def write_tables(rows, meta, output_dir):
    """Write results.csv and results.json; returns their names."""
    with open(output_dir / "results.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    results = [{key: _finite_or_none(value) for key, value in row.items()} for row in rows]
    with open(output_dir / "results.json", "w", encoding="utf-8") as file:
        json.dump({**meta, "results": results}, file, indent=2, allow_nan=False)
        file.write("\n")
    return ["results.csv", "results.json"]


def _log_scale_if_positive(ax, values):
    """A log y axis, unless a value is zero or negative (an exact reconstruction)."""
    if all(value > 0 for value in values):
        ax.set_yscale("log")


def _error_figure(rows, models, dims, data_name):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    errors = [[row["test_mse"] for row in rows if row["model"] == name] for name in models]
    display = ReconstructionErrorDisplay(dims, errors, names=list(models)).plot(
        ax=figure.subplots()
    )
    display.ax_.set_xscale("log", base=2)
    display.ax_.set_xticks(dims, [str(dim) for dim in dims])
    display.ax_.minorticks_off()
    _log_scale_if_positive(display.ax_, [error for line in errors for error in line])
    display.ax_.set_ylabel("Test reconstruction MSE")
    display.ax_.set_title(f"Autoencoders versus PCA on {data_name}")
    return figure


def _loss_figure(fitted, models, dims, data_name):
    """The autoencoders' training curves, one panel each, the legend beside them."""
    from matplotlib.figure import Figure

    autoencoders = models[1:]
    figure = Figure(figsize=(4.2 * len(autoencoders) + 1.6, 4.0), layout="constrained")
    axes = figure.subplots(ncols=len(autoencoders), squeeze=False)[0]
    for ax, name in zip(axes, autoencoders, strict=True):
        values = []
        for dim in dims:
            display = LossCurveDisplay.from_estimator(fitted[name, dim], name=str(dim), ax=ax)
            values += list(display.line_.get_ydata())
        ax.get_legend().remove()
        _log_scale_if_positive(ax, values)
        ax.set_title(name)
    # Outside the axes, the legend covers no curve.
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right upper", title="encoding_dim")
    figure.suptitle(f"Autoencoder training on {data_name}")
    return figure


def _reconstruction_figure(fitted, models, dims, X_test, image_shape):
    from matplotlib.figure import Figure

    n_images = min(10, X_test.shape[0])
    height, width = image_shape
    n_rows = 1 + len(models) * len(dims)
    cell = 0.6  # inches per image
    figure = Figure(
        figsize=(2.2 + n_images * cell * width / height, 0.6 + n_rows * cell),
        layout="compressed",
    )
    display = ReconstructionDisplay.from_estimator(
        [fitted[name, dim] for dim in dims for name in models],
        X_test,
        image_shape=image_shape,
        n_images=n_images,
        name=[f"{name} ({dim})" for dim in dims for name in models],
        ax=figure.subplots(),
    )
    display.ax_.set_title("Test images and reconstructions (encoding_dim)")
    return figure


def write_figures(rows, fitted, models, X_test, image_shape, data_name, output_dir):
    """Draw the figures into PNG files; returns their names."""
    dims = sorted({row["encoding_dim"] for row in rows})
    figures = {
        "error_vs_dim.png": _error_figure(rows, models, dims, data_name),
        "loss_curves.png": _loss_figure(fitted, models, dims, data_name),
    }
    if image_shape is not None:
        figures["reconstructions.png"] = _reconstruction_figure(
            fitted, models, dims, X_test, image_shape
        )
    for name, figure in figures.items():
        figure.savefig(output_dir / name, dpi=100)
    return list(figures)
