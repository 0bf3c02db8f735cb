"""The picture an operator looks at: load, capacity and instances over time, one PNG per run.

Top panel: the offered load, what the policy observed (when that differs) and each controller's
ready capacity (ready instances x capacity) -- overload is wherever the load is above a
controller's capacity line. Bottom panel: Steward's desired and ready instances, and each
baseline's ready instances. Drawn with matplotlib's object API on the Agg canvas: no GUI, no
pyplot global state, safe in a server or a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from framework.sim.model import Timeline

__all__ = ["plot_timelines"]

_COLOURS = {
    "steward": "tab:blue",
    "hpa": "tab:orange",
    "kpa": "tab:green",
    "marathon-lb-autoscale": "tab:red",
}


def plot_timelines(path: str | Path, timelines: Sequence[Timeline], *, title: str = "") -> None:
    """Write a PNG of ``timelines`` (Steward's first, then any baselines) to ``path``."""
    if not timelines:
        raise ValueError("nothing to plot")
    main = timelines[0]
    seconds = list(range(len(main)))
    figure = Figure(figsize=(12, 7.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    load_axes, count_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 2))

    load_axes.plot(seconds, main.offered, color="0.6", linewidth=0.6, label="offered load")
    if main.observed != [float(o) for o in main.offered]:
        load_axes.plot(seconds, main.observed, color="tab:purple", linewidth=0.6, label="observed (Steward)")
    for timeline in timelines:
        colour = _COLOURS.get(timeline.name)
        capacity = [r * timeline.capacity for r in timeline.ready]
        style = "-" if timeline is main else "--"
        width = 1.6 if timeline is main else 1.0
        label = f"capacity ({timeline.name})"
        load_axes.step(
            seconds, capacity, where="post", color=colour, linestyle=style, linewidth=width, label=label
        )
    load_axes.set_ylabel("requests/s")
    load_axes.legend(loc="upper right", fontsize="small")
    load_axes.grid(alpha=0.3)
    if title:
        load_axes.set_title(title)

    steward_colour = _COLOURS["steward"]
    count_axes.step(
        seconds, main.desired, where="post", color=steward_colour, linestyle=":", label="desired (steward)"
    )
    count_axes.step(
        seconds, main.ready, where="post", color=steward_colour, linewidth=1.6, label="ready (steward)"
    )
    for timeline in timelines[1:]:
        colour = _COLOURS.get(timeline.name)
        label = f"ready ({timeline.name})"
        count_axes.step(
            seconds, timeline.ready, where="post", color=colour, linestyle="--", linewidth=1.0, label=label
        )
    count_axes.set_ylabel("instances")
    count_axes.set_xlabel("time (s)")
    count_axes.legend(loc="upper right", fontsize="small")
    count_axes.grid(alpha=0.3)
    figure.savefig(path, format="png")
