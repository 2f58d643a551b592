"""
The paper's condensation figures, drawn from the run dicts that measure.py writes to condensation.json (one run:
the run's dict; several: {"runs": [dict, ...]}). Each figure is a function of a list of runs and a PNG path:

    plot_heatmaps   Figure 2a, 3a, 5a, S1, S2 (one panel per run) and Figure 7 (baseline and dispersion side by
                    side): per hidden state, a column holding the density of its token cosines.
                    Reads name, step, histograms (per hidden state, 128 densities on [-1, 1]).
    plot_trend      Figure 2b, 3b, 5b: left, the mean cosine of each hidden state against depth, one line per run;
                    right, each run's Spearman and Kendall correlation of those means with the layer index (against
                    the step for a snapshot series, the over-training view of Figure 4).
                    Reads name, step, mean_cossim, spearman, kendall.

    python measure.py --ckpt=out-demo                            # measures, then write_figures: heatmap(s), trend.png
    python measure.py --compare=out-base,out-disp --out_dir=fig7  # compare: both figures for runs measured earlier

A new figure is one more plot_* function here, called from write_figures or compare. matplotlib is imported inside
the functions: train.py imports measure.py (which imports this file) and should not pay for it. Figures are built on
matplotlib.figure.Figure rather than pyplot, so no backend or display is involved, and each PNG goes through
checkpoint.atomic_write, so a crash never leaves half an image.
"""

import json
import os
import re

import numpy as np

from checkpoint import atomic_write


def save_figure(fig, path):
    atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=150, bbox_inches='tight'))
    return fig


def plot_heatmaps(runs, path):
    """Figure 2a, side by side for several runs (Figure 7: baseline vs dispersion): one column per hidden state
    at x = index / (num_states - 1), the density of its cosines on y. -> the matplotlib Figure."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3.6 * len(runs) + 0.8, 3.4))
    axes = fig.subplots(1, len(runs), squeeze=False)
    for ax, run in zip(axes[0], runs):
        hist = np.array(run['histograms'])              # (num_states, bins)
        half = 0.5 / max(len(hist) - 1, 1)              # columns centred on their layer fraction
        im = ax.imshow(hist.T, origin='lower', aspect='auto', cmap='Reds', vmin=0, vmax=10,
                       extent=[-half, 1 + half, -1, 1])
        ax.set_ylim(-0.25, 1)                           # the paper's display range
        ax.set_xlabel('layer fraction')
        ax.set_title(run['name'] if run['step'] is None or run['name'].endswith(f"step {run['step']}")
                     else f"{run['name']} (step {run['step']})", fontsize=9)
    axes[0][0].set_ylabel('cosine similarity')
    fig.colorbar(im, ax=axes[0].tolist(), label='density')
    return save_figure(fig, path)


def plot_trend(runs, path):
    """Figure 2b: mean cosine per layer fraction, one line per run, and the rank correlations per run: bars, or
    lines against the step when the runs are one snapshot series (distinct steps). -> the matplotlib Figure."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for run in runs:
        m = run['mean_cossim']
        ax1.plot(np.linspace(0, 1, len(m)), m, marker='.', label=run['name'])
    ax1.set_xlabel('layer fraction')
    ax1.set_ylabel('mean cosine similarity')
    ax1.legend(fontsize=7)
    nan = lambda v: np.nan if v is None else v         # undefined correlations (constant means) draw nothing
    rho, tau = [nan(r['spearman']) for r in runs], [nan(r['kendall']) for r in runs]
    steps = [r['step'] for r in runs]
    if len(runs) > 1 and None not in steps and len(set(steps)) == len(steps):  # a snapshot series: x = step
        ax2.plot(steps, rho, marker='o', label='Spearman')
        ax2.plot(steps, tau, marker='s', label='Kendall')
        ax2.set_xlabel('step')
    else:
        x = np.arange(len(runs))
        ax2.bar(x - 0.2, rho, 0.4, label='Spearman')
        ax2.bar(x + 0.2, tau, 0.4, label='Kendall')
        ax2.set_xticks(x, [r['name'] for r in runs], rotation=30, ha='right', fontsize=7)
        ax2.set_xlim(-1, len(runs))
    ax2.set_ylabel('rank correlation with depth')
    ax2.set_ylim(-1, 1)
    ax2.axhline(0, color='gray', lw=0.5)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


# -----------------------------------------------------------------------------
# the figures of one measurement (measure.py's write_outputs), and --compare across earlier ones

def write_figures(runs, out_dir):
    """heatmap.png (one run) or heatmap_<name>.png (each of several) for runs measured with histograms, and
    trend.png for all of them."""
    for r in runs:
        if r['histograms'] is not None:
            name = 'heatmap.png' if len(runs) == 1 else f"heatmap_{safe_name(r['name'])}.png"
            plot_heatmaps([r], os.path.join(out_dir, name))
    plot_trend(runs, os.path.join(out_dir, 'trend.png'))


def safe_name(name):
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'run'


def load_runs(path):
    """A condensation.json (or the out_dir holding one) -> list of run dicts (one-run files are flat)."""
    if os.path.isdir(path):
        path = os.path.join(path, 'condensation.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no condensation.json at '{path}'")
    with open(path) as f:
        obj = json.load(f)
    return obj['runs'] if 'runs' in obj else [obj]


def compare(paths, out_dir):
    """measure.py --compare: compare.png (the heatmaps side by side, Figure 7) and compare_trend.png from the
    runs of several condensation.json files (or out_dirs), without measuring. -> the runs drawn."""
    labelled = [(p, r) for p in paths for r in load_runs(p)]
    runs = [r for _, r in labelled]
    if len({r['name'] for r in runs}) < len(runs):  # e.g. two runs of one script: say which file each is
        for p, r in labelled:
            r['name'] = f"{os.path.basename(os.path.normpath(p))}: {r['name']}"
    if any(r['histograms'] is None for r in runs):
        raise ValueError("--compare needs runs measured with histograms=True")
    os.makedirs(out_dir, exist_ok=True)
    plot_heatmaps(runs, os.path.join(out_dir, 'compare.png'))
    plot_trend(runs, os.path.join(out_dir, 'compare_trend.png'))
    return runs
