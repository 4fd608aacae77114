"""ipywidgets built on plain drawing functions (API common to ipywidgets 7.7 and 8).

Every widget here wraps a function that returns an image (or draws a matplotlib figure); notebooks call
that function once directly for a static picture, then show the widget for exploration. A headless run
(CI, nbval) therefore exercises the same drawing code the widget uses.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def show_image(image: np.ndarray, *, title: str | None = None, width: float = 8.0, ax=None):
    """Show an (H, W, 3) uint8 RGB image with matplotlib; returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        height = width * image.shape[0] / max(1, image.shape[1])
        _, ax = plt.subplots(figsize=(width, max(1.5, height)))
    ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def frame_scrubber(
    draw: Callable[[int], np.ndarray],
    num_frames: int,
    *,
    description: str = "frame",
    interval_ms: int = 150,
    width: float = 8.0,
):
    """A Play button and a slider over frame indices that show ``draw(t)``.

    draw: plain function ``t -> (H, W, 3) uint8`` (call it directly for a static picture).
    Returns an ipywidgets ``VBox``; display it in a notebook.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    if num_frames < 1:
        raise ValueError("frame_scrubber needs at least one frame")
    slider = widgets.IntSlider(value=0, min=0, max=num_frames - 1, step=1, description=description, continuous_update=False)
    play = widgets.Play(value=0, min=0, max=num_frames - 1, step=1, interval=interval_ms, description="play")
    widgets.jslink((play, "value"), (slider, "value"))

    def _show(t: int) -> None:
        show_image(draw(int(t)), title=f"{description} {t}", width=width)
        plt.show()

    output = widgets.interactive_output(_show, {"t": slider})
    return widgets.VBox([widgets.HBox([play, slider]), output])


def choice_viewer(draw: Callable[[str], np.ndarray], options: list[str], *, description: str = "show", width: float = 8.0):
    """A dropdown over ``options`` that shows ``draw(option)`` (a plain function returning an image)."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    dropdown = widgets.Dropdown(options=list(options), value=options[0], description=description)

    def _show(option: str) -> None:
        show_image(draw(option), title=str(option), width=width)
        plt.show()

    output = widgets.interactive_output(_show, {"option": dropdown})
    return widgets.VBox([dropdown, output])
