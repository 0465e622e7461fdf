#!/usr/bin/env python3
"""The benchmark's PNG plots, run as its own program (by benchreport.plot) so
that an interpreter without matplotlib can still run the benchmark:

  benchplot.py all results.json OUTDIR   timeline-<workload>.png, freeze.png
  benchplot.py timeline runs.json OUT.png  timelines: {"labels", "panels": [{"title", "runs"}]}

A run (results.json's "runs"): workload, guard, kernel, status, worst_gap_s,
timeline = [[s from the workload's start, heartbeat gap ms], ...].
"""

import json
import pathlib
import statistics
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt          # noqa: E402

COLORS = {"none": "#000000", "earlyoom": "#1f77b4", "nohang": "#17becf", "systemd-oomd": "#9467bd",
          "mglru": "#2ca02c", "oom_ext": "#d62728", "oom_ext-fallback": "#ff7f0e", "oom_ext-nopsi": "#8c564b"}
FLOOR_S = 0.05      # a log axis needs it; the beat is 0.1 s
SECONDS = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")


def color(guard):
    return COLORS.get(guard, "#7f7f7f")


def representative(runs):
    """The run whose worst freeze is the median of its kind (the lower one for an even count)."""
    ranked = sorted(runs, key=lambda r: (r["worst_gap_s"] is None, r["worst_gap_s"] or 0))
    return ranked[(len(ranked) - 1) // 2]


def draw_timeline(ax, runs, labels):
    top = 1.0
    for r in runs:
        pts = r.get("timeline") or []
        if not pts:
            continue
        t = [p[0] for p in pts]
        gap = [max(p[1] / 1000, FLOOR_S) for p in pts]
        top = max(top, max(gap))
        worst = r.get("worst_gap_s")
        tag = f"{labels.get(r['guard'], r['guard'])}: worst {worst:.1f} s" if worst is not None else \
            labels.get(r["guard"], r["guard"])
        if r.get("status") not in (None, "finished"):
            tag += f" ({r['status']})"
        if r.get("memory_pressure") is False:       # a starved host: the freezes are the host's
            tag += " — no memory pressure: not measured"
        ax.plot(t, gap, drawstyle="steps-pre", color=color(r["guard"]), linewidth=1.2, label=tag, alpha=0.85)
    ax.set_yscale("log")
    ax.set_ylim(FLOOR_S, top * 1.5)
    ax.yaxis.set_major_formatter(SECONDS)
    ax.axhline(1.0, color="#999999", linewidth=0.6, linestyle=":")
    ax.set_xlabel("s since the workload started")
    ax.set_ylabel("heartbeat gap, s (log)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")


def plot_all(results, outdir):
    runs, labels, guards = results["runs"], results.get("labels", {}), results.get("guards", [])
    kind = results.get("meta", {}).get("kind", "")
    partial = "" if kind.startswith("full") else " — partial run"
    workloads = list(dict.fromkeys(r["workload"] for r in runs if r["workload"] != "idle"))
    kernels = sorted({r["kernel"] for r in runs})
    for w in workloads:
        fig, axes = plt.subplots(len(kernels), 1, figsize=(10, 3.6 * len(kernels)), squeeze=False)
        for ax, k in zip(axes[:, 0], kernels):
            sel = []
            for g in guards:
                mine = [r for r in runs if r["workload"] == w and r["kernel"] == k and r["guard"] == g]
                if mine:
                    sel.append(representative(mine))
            draw_timeline(ax, sel, labels)
            ax.set_title(f"{w}, kernel {k}: heartbeat gap per guard (the median run of each){partial}", fontsize=9)
        fig.tight_layout()
        fig.savefig(outdir / f"timeline-{w}.png", dpi=110)
        plt.close(fig)
    if not workloads:
        return
    cols = min(3, len(workloads))
    rows = -(-len(workloads) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.6 * cols, 9), 3.4 * rows + 0.6), squeeze=False)
    for ax in axes.flat[len(workloads):]:
        ax.set_visible(False)
    width = 0.8 / max(len(kernels), 1)
    for ax, w in zip(axes.flat, workloads):
        present = [g for g in guards if any(r["workload"] == w and r["guard"] == g for r in runs)]
        for ki, k in enumerate(kernels):
            for gi, g in enumerate(present):
                vals = [r["worst_gap_s"] for r in runs if r["workload"] == w and r["guard"] == g
                        and r["kernel"] == k and r["worst_gap_s"] is not None]
                if not vals:
                    continue
                x = gi + (ki - (len(kernels) - 1) / 2) * width
                med = statistics.median(vals)
                ax.bar(x, max(med, FLOOR_S), width * 0.9, color=color(g), alpha=0.75 if ki == 0 else 0.45,
                       hatch="" if ki == 0 else "//")
                ax.text(x, max(med, FLOOR_S) * 1.08, f"{med:.1f}", fontsize=6, ha="center", va="bottom")
                ax.errorbar(x, med, yerr=[[med - min(vals)], [max(vals) - med]], color="#333333", capsize=3,
                            linewidth=0.9)
                bad = [r for r in runs if r["workload"] == w and r["guard"] == g and r["kernel"] == k
                       and r["status"] not in ("finished", "rebooted")]
                if bad:
                    tag = "cut off" if all(r["status"].startswith("workload cut off") for r in bad) else "unfinished"
                    ax.text(x, max(vals) * 1.6, tag, rotation=90, fontsize=6, ha="center", va="bottom")
        ax.set_yscale("log")
        top = max([r["worst_gap_s"] for r in runs if r["workload"] == w and r["worst_gap_s"]] or [1.0])
        ax.set_ylim(FLOOR_S, max(top, 1.0) * 3)
        ax.yaxis.set_major_formatter(SECONDS)
        ax.set_xticks(range(len(present)))
        ax.set_xticklabels([labels.get(g, g) for g in present], rotation=40, ha="right", fontsize=7)
        ax.set_title(w, fontsize=9)
        ax.set_ylabel("worst freeze, s (log)", fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("worst freeze of the heartbeat: median bar, min–max whiskers\n"
                 + (f"kernels {', '.join(kernels)} (solid, hatched)" if len(kernels) > 1 else f"kernel {kernels[0]}")
                 + partial, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    fig.savefig(outdir / "freeze.png", dpi=110)
    plt.close(fig)


def plot_timeline(spec, out):
    panels = spec.get("panels") or [spec]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 3.6 * len(panels)), squeeze=False)
    for ax, panel in zip(axes[:, 0], panels):
        draw_timeline(ax, panel["runs"], spec.get("labels", {}))
        ax.set_title(panel.get("title", ""), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv):
    if len(argv) != 4 or argv[1] not in ("all", "timeline"):
        print(__doc__, file=sys.stderr)
        return 2
    data = json.loads(pathlib.Path(argv[2]).read_text())
    if argv[1] == "all":
        plot_all(data, pathlib.Path(argv[3]))
    else:
        plot_timeline(data, pathlib.Path(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
