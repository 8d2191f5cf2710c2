"""Matplotlib figures of what the network sees and learns; each function returns a Figure.

Figures are built with ``matplotlib.figure.Figure`` directly, not pyplot: no global state, no
GUI backend, nothing left open, so they are safe inside training and in notebooks alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

RIGHT, WRONG = "tab:green", "tab:red"


def _grid(count: int, cols: int, cell: float = 1.6, title: str = "") -> tuple[Figure, list]:
    """A figure with ``count`` image axes in rows of ``cols``, ticks off, spares hidden."""
    cols = max(1, min(cols, count))
    rows = -(-count // cols)
    fig = Figure(figsize=(cols * cell, rows * cell + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig, list(axes[:count])


def pixels(images: np.ndarray) -> np.ndarray:
    """Images (..., C, H, W) as imshow draws them: (..., H, W) grey, or (..., H, W, 3) colour
    (clipped: an augmented colour image may stray outside [0, 1])."""
    if images.shape[-3] == 1:
        return images[..., 0, :, :]
    return np.clip(np.moveaxis(images[..., :3, :, :], -3, -1), 0, 1)


def image_grid(
    images: np.ndarray,
    titles: Sequence[str],
    colours: Sequence[str] | None = None,
    title: str = "",
    colorbar: bool = False,
    cmap: str = "gray",
) -> Figure:
    """Images (N, H, W), or colour ones (N, H, W, 3), with a title each, optionally coloured
    (right/wrong) and, for grey images, a colour bar."""
    fig, axes = _grid(len(images), cols=int(np.ceil(np.sqrt(len(images)))), title=title)
    for i, (ax, image, text) in enumerate(zip(axes, images, titles, strict=True)):
        shown = ax.imshow(image, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(text, fontsize=8, color=colours[i] if colours else "black")
    if colorbar and axes and images.ndim == 3:  # a colour bar means nothing beside RGB
        fig.colorbar(shown, ax=axes, shrink=0.6, label="pixel value (/255)")
    return fig


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Counts of (true class, predicted class); the diagonal holds the correct predictions."""
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix ({int(matrix.sum())} test images)")
    threshold = matrix.max() / 2
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > threshold else "black"
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(shown, ax=ax, shrink=0.8)
    return fig


def accuracy_figure(accuracy: np.ndarray, class_names: Sequence[str]) -> Figure:
    """Per-class test accuracy as bars, with the value written on each bar."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(class_names, accuracy, color="tab:blue")
    ax.bar_label(bars, labels=[f"{a:.3f}" for a in accuracy], fontsize=7)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("accuracy")
    ax.set_title("Per-class test accuracy")
    return fig


def filters_figure(weight: np.ndarray, name: str = "conv1") -> Figure:
    """A conv layer's filters (out, in, k, k), first input channel, each on its own scale."""
    kernels = weight[:, 0]
    fig, axes = _grid(len(kernels), cols=8, cell=1.0, title=f"{name} filters ({len(kernels)})")
    for i, (ax, kernel) in enumerate(zip(axes, kernels, strict=True)):
        ax.imshow(kernel, cmap="viridis")
        ax.set_title(str(i), fontsize=7)
    return fig


def feature_maps_figure(
    image: np.ndarray, stages: Sequence[tuple[str, np.ndarray]], channels: int = 8
) -> Figure:
    """One input image, then a row per layer with its first ``channels`` feature maps (C, H, W)."""
    cols = channels
    fig = Figure(figsize=(cols * 1.3, (len(stages) + 1) * 1.45), layout="constrained")
    axes = fig.subplots(len(stages) + 1, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    axes[0, 0].imshow(image, cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("input", fontsize=8)
    for row, (name, maps) in zip(axes[1:], stages, strict=True):
        for col, (ax, fmap) in enumerate(zip(row, maps[:cols], strict=False)):
            ax.imshow(fmap, cmap="viridis")
            ax.set_title(f"{name} #{col}" if col else f"{name} {tuple(maps.shape)}", fontsize=7)
    fig.suptitle("Feature maps of one test image after each conv (+ReLU) and pool layer")
    return fig
