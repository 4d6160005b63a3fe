"""The /stats chart: a PNG with 30-day activity, lifecycle segments and retention by join week.

matplotlib is imported only here and only when a chart is drawn (Agg canvas, no pyplot, so drawing in a
worker thread is safe). Without matplotlib ``render_png`` raises ImportError and /stats sends the text
report alone. Chinese labels need a CJK font; without one the caller passes English labels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date

CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei", "PingFang SC", "Heiti SC", "Droid Sans Fallback",
    "AR PL UMing CN", "Arial Unicode MS",
)  # fmt: skip


@dataclass
class ChartData:
    title: str
    days: list[date]
    messages: list[int]
    dau: list[int]
    segments: list[tuple[str, int]]
    # (cohort label, [D1, D7, D30] rates or None)
    cohorts: list[tuple[str, list[float | None]]]
    labels: dict[str, str] = field(default_factory=dict)


def cjk_font() -> str | None:
    """A font installed here that has Chinese glyphs, or None (raises ImportError without matplotlib)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in installed:
            return name
    return None


def render_png(data: ChartData, font: str | None = None) -> bytes:
    """Draw the chart; raises ImportError when matplotlib is not installed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    lab = data.labels
    fig = Figure(figsize=(9, 10), dpi=100)
    FigureCanvasAgg(fig)
    fig.suptitle(data.title, fontfamily=family, fontsize=14)
    grid = fig.add_gridspec(2, 2, height_ratios=[1.1, 1], hspace=0.35, wspace=0.3)

    ax = fig.add_subplot(grid[0, :])
    xs = list(range(len(data.days)))
    ax.bar(xs, data.messages, color="#7fb3d5", label=lab.get("messages", "messages"))
    ax.set_ylabel(lab.get("messages", "messages"), fontfamily=family)
    ax2 = ax.twinx()
    ax2.plot(xs, data.dau, color="#e67e22", marker="o", markersize=3, label=lab.get("dau", "DAU"))
    ax2.set_ylabel(lab.get("dau", "DAU"), fontfamily=family)
    ax2.set_ylim(bottom=0)
    step = max(1, len(xs) // 10)
    ax.set_xticks(xs[::step])
    ax.set_xticklabels([d.strftime("%m-%d") for d in data.days][::step], rotation=0, fontsize=8)
    ax.set_title(lab.get("activity", "activity"), fontfamily=family)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", prop={"family": family})

    ax = fig.add_subplot(grid[1, 0])
    names = [n for n, _ in data.segments]
    counts = [c for _, c in data.segments]
    colors = ["#58d68d", "#5dade2", "#f4d03f", "#ec7063", "#aab7b8"][:len(names)]
    bars = ax.barh(range(len(names)), counts, color=colors)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontfamily=family)
    ax.invert_yaxis()
    ax.set_xlabel(lab.get("members", "members"), fontfamily=family)
    ax.set_title(lab.get("segments", "segments"), fontfamily=family)
    for bar, n in zip(bars, counts, strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {n}", va="center", fontsize=8)

    ax = fig.add_subplot(grid[1, 1])
    width = 0.25
    series = (lab.get("d1", "D1"), lab.get("d7", "D7"), lab.get("d30", "D30"))
    for k, (name, color) in enumerate(zip(series, ("#5dade2", "#58d68d", "#af7ac5"), strict=True)):
        values = [(rates[k] or 0.0) * 100 for _, rates in data.cohorts]
        ax.bar([i + (k - 1) * width for i in range(len(data.cohorts))], values, width, color=color, label=name)
    ax.set_xticks(range(len(data.cohorts)))
    ax.set_xticklabels([c for c, _ in data.cohorts], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(lab.get("retention", "retention"), fontfamily=family)
    ax.legend(prop={"family": family, "size": 8})

    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
