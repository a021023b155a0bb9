"""The PNG: service/ceiling throughput ratios, and the ratios that have targets (depth, scale)."""

from __future__ import annotations

from pathlib import Path

from bench import plan


def draw(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    adapters = [a for a, found in results["adapters"].items() if "scenarios" in found]
    throughput = {
        a: {name: s["ratio"] for name, s in results["adapters"][a]["scenarios"].items()}
        for a in adapters
    }
    targeted = {a: _targeted(results, a) for a in adapters}
    panels = 2 if any(targeted.values()) else 1
    figure, axes = plt.subplots(1, panels, figsize=(7 * panels, 4.5), squeeze=False)
    _bars(axes[0][0], throughput, "service rps / ceiling rps (higher is better)")
    axes[0][0].axhline(1.0, color="black", linestyle="--", linewidth=1, label="ceiling")
    _legend(axes[0][0])
    if panels == 2:
        _bars(axes[0][1], targeted, "p50 ratios (lower is better)")
        axes[0][1].axhline(plan.TARGETS["depth_ratio"], color="red", linestyle="--", linewidth=1,
                           label=f"target {plan.TARGETS['depth_ratio']}")
        _legend(axes[0][1])
    figure.suptitle(f"Notes service vs ceilings ({results['machine']['loadgen']})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _targeted(results: dict, adapter: str) -> dict[str, float]:
    """Depth page / first page p50 per sort, and POST p50 at 1M / at 1k notes."""
    found = {
        name.removeprefix("sort="): probe["ratio"]
        for name, probe in results["adapters"][adapter].get("probes", {}).items()
        if "ratio" in probe
    }
    scale = results.get("checks", {}).get("scale", {}).get(adapter)
    if scale:
        found["POST 1M/1k"] = scale["ratio"]
    return found


def _legend(axis) -> None:
    """Below the bars, where it hides none of them."""
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=4, frameon=False)


def _bars(axis, values: dict[str, dict[str, float]], title: str) -> None:
    """Grouped bars: one group per scenario, one bar per adapter."""
    names = list(dict.fromkeys(n for per_adapter in values.values() for n in per_adapter))
    width = 0.8 / max(1, len(values))
    for index, (adapter, per_adapter) in enumerate(values.items()):
        xs = [i + index * width for i, n in enumerate(names) if n in per_adapter]
        ys = [per_adapter[n] for n in names if n in per_adapter]
        axis.bar(xs, ys, width, label=adapter)
        for x, y in zip(xs, ys, strict=True):
            axis.text(x, y, f"{y:.2f}", ha="center", va="bottom", fontsize=7)
    middle = width * (len(values) - 1) / 2
    axis.set_xticks([i + middle for i in range(len(names))], names, fontsize=8)
    axis.set_title(title, fontsize=10)
