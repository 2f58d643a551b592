"""
The paper's condensation figures, drawn from the run dicts that measure.py writes to condensation.json (one run:
the run's dict; several: {"runs": [dict, ...]}). Each figure is a function of a list of runs and a PNG path:

    plot_heatmaps   Figure 2a, 3a, 5a, S1, S2 (one panel per run) and Figure 7 (baseline and dispersion side by
                    side): per hidden state, a column holding the density of its token cosines.
                    Reads name, step, histograms (per hidden state, 128 densities on [-1, 1]).
    plot_trend      Figure 2b, 3b, S1: left, the mean cosine of each hidden state against depth, one line per run;
                    right, each run's Spearman and Kendall correlation of those means with the layer index: against
                    model size (n_params, log scale) for a family, against the step for a snapshot series (the
                    over-training view of Figure 4), else one named slot per run.
                    Reads name, step, n_params, mean_cossim, spearman, kendall. measure='effective_rank' (any
                    measure of measure.py --measures): that measure against depth, and on the right its value at
                    the last hidden state and its mean over them (trend_<measure>.png).
    plot_steps      over training, for the snapshots of one run: per measure, each hidden state against the step
                    (steps.png, with --measures). Reads step and the measures.
    plot_last_n     the last-n metric: the mean cosine of the last n hidden states (n = 1..5 and L/2), on the
                    same x axis. Reads name, step, n_params, mean_last_n.
    plot_pairs      Figure 5b: base models against their distilled models (runs: the bases, then the distilled
                    in the same order): both correlations against size, and the per-layer curves of each pair.
                    Reads name, n_params, mean_cossim, spearman, kendall.

    python measure.py --ckpt=out-demo                            # measures, then write_figures
    python measure.py config/measure_distill_qwen2_5.py          # a family in pairs: trend, last_n and pairs.png
    python measure.py --compare=out-base,out-disp --out_dir=fig7  # compare: both figures for runs measured earlier

A new figure is one more plot_* function here, called from write_figures or compare. matplotlib is imported inside
the functions: train.py imports measure.py (which imports this file) and should not pay for it. Figures are built on
matplotlib.figure.Figure rather than pyplot, so no backend or display is involved, and each PNG goes through
atomic.atomic_write, so a crash never leaves half an image.
"""

import json
import os
import re

import numpy as np

from atomic import atomic_write


def save_figure(fig, path):
    atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=150, bbox_inches='tight'))
    return fig


def draw_density(ax, run):
    """One heatmap panel: a column per hidden state at x = index / (num_states - 1), the density of its token
    cosines on y (the paper's colour scale 0..10 and display range -0.25..1). -> the image, for a colorbar."""
    hist = np.array(run['histograms'])              # (num_states, bins)
    half = 0.5 / max(len(hist) - 1, 1)              # columns centred on their layer fraction
    im = ax.imshow(hist.T, origin='lower', aspect='auto', cmap='Reds', vmin=0, vmax=10,
                   extent=[-half, 1 + half, -1, 1])
    ax.set_ylim(-0.25, 1)
    ax.set_xlabel('layer fraction')
    return im


def plot_heatmaps(runs, path):
    """Figure 2a, side by side for several runs (Figure 7: baseline vs dispersion): one column per hidden state
    at x = index / (num_states - 1), the density of its cosines on y. -> the matplotlib Figure."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3.6 * len(runs) + 0.8, 3.4))
    axes = fig.subplots(1, len(runs), squeeze=False)
    for ax, run in zip(axes[0], runs):
        im = draw_density(ax, run)
        ax.set_title(run['name'] if run['step'] is None or run['name'].endswith(f"step {run['step']}")
                     else f"{run['name']} (step {run['step']})", fontsize=9)
    axes[0][0].set_ylabel('cosine similarity')
    fig.colorbar(im, ax=axes[0].tolist(), label='density')
    return save_figure(fig, path)


def size_axis(runs):
    """What the correlation panels put on x for these runs: ('step', values) for a snapshot series (steps
    rising), ('parameters', values) for models of distinct sizes (a family; n_params: every parameter, a tied LM
    head once), else (None, positions): one slot per run, named."""
    steps, sizes = [r.get('step') for r in runs], [r.get('n_params') for r in runs]
    if len(runs) > 1 and None not in steps and all(a < b for a, b in zip(steps, steps[1:])):
        return 'step', steps
    if len(runs) > 1 and None not in sizes and len(set(sizes)) == len(sizes):
        return 'parameters', sizes
    return None, list(range(len(runs)))


def set_x(ax, runs, axis):
    """Label the x axis of size_axis: a log scale for parameters, each model named at its size; names for slots."""
    if axis[0] == 'parameters':
        ax.set_xscale('log')
        short = lambda n: f'{n / 1e9:.3g}B' if n >= 1e9 else f'{n / 1e6:.3g}M' if n >= 1e6 else f'{n / 1e3:.3g}K'
        ax.set_xticks(axis[1], [f"{r['name']}\n{short(n)}" for r, n in zip(runs, axis[1])], rotation=30, ha='right',
                      fontsize=7)
        ax.minorticks_off()
    if axis[0] is None:
        ax.set_xticks(axis[1], [r['name'] for r in runs], rotation=30, ha='right', fontsize=7)
        ax.set_xlim(-0.5, len(runs) - 0.5)
    ax.set_xlabel({'step': 'step', 'parameters': 'parameters (all; a tied LM head once)'}.get(axis[0], ''))


def measure_label(measure):
    """The axis label of a measure of measure.py (its names: measure.parse_measures)."""
    if measure.startswith('pca_top'):
        return f"variance share of the top {measure[len('pca_top'):]} PCs"
    return {'mean_cossim': 'mean cosine similarity', 'mean_cossim_offdiag': 'mean cosine similarity, i != j',
            'effective_rank': 'effective rank (dimensions)', 'isoscore': 'IsoScore'}.get(measure, measure)


def plot_two(ax, axis, first, second):
    """Two (values, label) series, one value per run, on plot_trend's right panel: lines (o, s markers) over a
    numeric axis (size, step), else side-by-side bars over the runs' slots."""
    if axis[0] is not None:
        ax.plot(axis[1], first[0], marker='o', label=first[1])
        ax.plot(axis[1], second[0], marker='s', label=second[1])
    else:
        ax.bar(np.array(axis[1]) - 0.2, first[0], 0.4, label=first[1])
        ax.bar(np.array(axis[1]) + 0.2, second[0], 0.4, label=second[1])


def plot_trend(runs, path, measure='mean_cossim'):
    """Figure 2b / S1 / 3b: left, the mean cosine of each hidden state against depth, one line per run; right,
    each run's Spearman and Kendall correlation of those means with the layer index, against model size for a
    family, against the step for a snapshot series (Figure 4's view), else bars. -> the matplotlib Figure.
    measure: another measure of the runs (measure.py --measures) on the left; the right panel then shows its value
    at the last hidden state and its mean over all of them, on the same x axis."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for run in runs:
        m = run[measure]
        ax1.plot(np.linspace(0, 1, len(m)), m, marker='.', label=run['name'])
    ax1.set_xlabel('layer fraction')
    ax1.set_ylabel(measure_label(measure))
    ax1.legend(fontsize=7)
    if measure != 'mean_cossim':
        axis = size_axis(runs)
        last, mean = [r[measure][-1] for r in runs], [float(np.mean(r[measure])) for r in runs]
        plot_two(ax2, axis, (last, 'last hidden state'), (mean, 'mean over hidden states'))
        set_x(ax2, runs, axis)
        ax2.set_ylabel(measure_label(measure))
        ax2.legend(fontsize=7)
        fig.tight_layout()
        return save_figure(fig, path)
    nan = lambda v: np.nan if v is None else v         # undefined correlations (constant means) draw nothing
    rho, tau = [nan(r['spearman']) for r in runs], [nan(r['kendall']) for r in runs]
    axis = size_axis(runs)
    plot_two(ax2, axis, (rho, 'Spearman'), (tau, 'Kendall'))
    set_x(ax2, runs, axis)
    ax2.set_ylabel('rank correlation with depth')
    ax2.set_ylim(-1.05, 1.05)
    ax2.axhline(0, color='gray', lw=0.5)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def last_n_values(run):
    """The paper's last-n metric: the mean cosine of the last n hidden states, for n = 1..5 and n = L // 2 + 1
    ('last L/2', L = number of hidden states). -> {label: value}."""
    m = run['mean_last_n']
    return {**{f'last {n}': m[n - 1] for n in range(1, 6) if n <= len(m)}, 'last L/2': m[len(m) // 2]}


def plot_last_n(runs, path):
    """The last-n plot: each run's mean cosine over its last n hidden states (n = 1..5 and L/2), one line per n,
    on the x axis of plot_trend (model size for a family). -> the matplotlib Figure."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    axis, values = size_axis(runs), [last_n_values(r) for r in runs]
    for label in [f'last {n}' for n in range(1, 6)] + ['last L/2']:  # a model of < 5 hidden states has no last 5
        ax.plot(axis[1], [v.get(label, np.nan) for v in values], marker='o', label=label)
    set_x(ax, runs, axis)
    ax.set_ylabel('mean cosine similarity of the last n layers')
    ax.set_ylim(0, 1.05)                               # a mean cosine with the diagonal is >= 0
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_pairs(runs, path):
    """Figure 5b: runs = base models, then their distilled models in the same order. Left and middle: Spearman
    and Kendall against the base model's size, base and distilled as two lines, each pair joined by a dotted
    line; right: per-layer mean cosine, the base solid and its distilled model dashed in one colour.
    -> the matplotlib Figure."""
    from matplotlib.figure import Figure
    half = len(runs) // 2
    bases, distilled = runs[:half], runs[half:]
    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    axis = size_axis(bases)
    for ax, key, title in ((axes[0], 'spearman', 'Spearman'), (axes[1], 'kendall', 'Kendall')):
        value = lambda r: np.nan if r[key] is None else r[key]
        ax.plot(axis[1], [value(r) for r in bases], marker='o', label='base')
        ax.plot(axis[1], [value(r) for r in distilled], marker='s', label='distilled')
        for x, b, d in zip(axis[1], bases, distilled):
            ax.plot([x, x], [value(b), value(d)], ':', color='gray')
        set_x(ax, bases, axis)
        ax.set_ylabel(f'{title} correlation with depth')
        ax.set_ylim(-1.05, 1.05)
        ax.legend(fontsize=7)
    for i, (b, d) in enumerate(zip(bases, distilled)):
        for run, style in ((b, '-'), (d, '--')):
            m = run['mean_cossim']
            axes[2].plot(np.linspace(0, 1, len(m)), m, style, color=f'C{i}', label=run['name'])
    axes[2].set_xlabel('layer fraction')
    axes[2].set_ylabel('mean cosine similarity')
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_steps(runs, path, measures=('mean_cossim',)):
    """Over training: runs = the snapshots of one run (measure.py --snapshots=True), steps rising. One panel per
    measure, the measure of each hidden state (one line each, darker = deeper) against the step. -> the Figure."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3.8 * len(measures) + 0.6, 3.4))
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    steps = [r['step'] for r in runs]
    for ax, measure in zip(axes, measures):
        values = np.array([r[measure] for r in runs])  # (snapshots, hidden states)
        for i in range(values.shape[1]):
            ax.plot(steps, values[:, i], marker='.', color=state_color(i, values.shape[1]), label=f'state {i}')
        ax.set_xlabel('step')
        ax.set_ylabel(measure_label(measure))
    axes[0].legend(fontsize=6, title='0 = embedding', title_fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def run_of(run):
    """The run a measured checkpoint belongs to: the folder of a snapshot ckpt_XXXXXX.pt or ckpt.pt, else its
    source (a run folder, an HF model)."""
    source = run.get('source') or run['name']
    return os.path.dirname(source) if re.fullmatch(r'ckpt(_\d+)?\.pt', os.path.basename(source)) else source


def plot_heatmap_grid(runs, path):
    """Figure 7 as the official plot_heatmaps.py lays it out: one row per run (the baseline, then the dispersion
    run), one column per saved checkpoint of it (the evaluation steps), each panel plot_heatmaps' density of the
    token cosines per hidden state. runs: measure.py --snapshots=True over several runs. -> the Figure."""
    from matplotlib.figure import Figure
    rows = {}
    for r in runs:
        rows.setdefault(run_of(r), []).append(r)
    width = max(len(v) for v in rows.values())
    fig = Figure(figsize=(3.2 * width + 0.8, 2.9 * len(rows)), layout='constrained')
    axes = fig.subplots(len(rows), width, squeeze=False)
    for row, (name, cells) in zip(axes, rows.items()):
        for col, ax in enumerate(row):
            if col >= len(cells):
                ax.axis('off')
                continue
            im = draw_density(ax, cells[col])
            ax.set_title(f"{os.path.basename(os.path.normpath(name))}, step {cells[col]['step']}", fontsize=8)
        row[0].set_ylabel('cosine similarity', fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), label='density')
    return save_figure(fig, path)


def state_color(i, n):
    """The colour of hidden state i of n: viridis from the embedding (dark) to the last state (light)."""
    from matplotlib import colormaps
    return colormaps['viridis'](i / max(n - 1, 1))


# -----------------------------------------------------------------------------
# the figures of one measurement (records.write_outputs), and --compare across earlier ones

def write_figures(runs, out_dir, pairs=False):
    """heatmap.png (one run) or heatmap_<name>.png (each of several) for runs measured with histograms,
    trend.png for all of them, last_n.png for several, pairs.png when they are base/distilled pairs, and
    heatmap_grid.png (Figure 7: a row per run, a column per step) for the snapshots of one or more runs."""
    for r in runs:
        if r['histograms'] is not None:
            name = 'heatmap.png' if len(runs) == 1 else f"heatmap_{safe_name(r['name'])}.png"
            plot_heatmaps([r], os.path.join(out_dir, name))
    plot_trend(runs, os.path.join(out_dir, 'trend.png'))
    if len(runs) > 1:
        plot_last_n(runs, os.path.join(out_dir, 'last_n.png'))
    if pairs:
        plot_pairs(runs, os.path.join(out_dir, 'pairs.png'))
    # measured with --measures: trend_<measure>.png for each, and for a snapshot series steps.png, all side by side
    extra = list(dict.fromkeys(m for r in runs for m in r.get('measures', ['mean_cossim'])[1:]))
    for measure in extra:
        plot_trend([r for r in runs if measure in r], os.path.join(out_dir, f'trend_{measure}.png'), measure)
    rows = {run_of(r) for r in runs}
    if len(runs) > len(rows) and all(r['histograms'] is not None for r in runs):  # snapshot series: Figure 7's grid
        plot_heatmap_grid(runs, os.path.join(out_dir, 'heatmap_grid.png'))
    if extra and size_axis(runs)[0] == 'step' and all(m in r for r in runs for m in extra):
        plot_steps(runs, os.path.join(out_dir, 'steps.png'), ['mean_cossim'] + extra)


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

# -----------------------------------------------------------------------------
# the training figure: drawn from a run's metrics.jsonl (train.py redraws it at every eval)

def read_metrics(path):
    """metrics.jsonl (or the out_dir holding it) -> list of records, in the order written. A line cut short by a
    crash (the last one) is skipped: the figure shows what was recorded whole."""
    if os.path.isdir(path):
        path = os.path.join(path, 'metrics.jsonl')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no metrics.jsonl at '{path}'")
    records = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get('step'), int):
                records.append(record)
    return records


def plot_training(records, path, title=None):
    """training.png: what a researcher looks at first. Panels, left to right: the train and val loss; the
    regularizer (and distillation) loss when one is on; the learning rate (and active forgetting's embedding lr);
    the gradient norm before clipping; and the live condensation probe as an image: the per-hidden-state mean
    cosine (rows, embedding at the bottom) at each eval step (columns). A panel with nothing recorded is left
    out. records: metrics.jsonl's dicts (read_metrics)."""
    from matplotlib.figure import Figure

    def series(key):
        pts = [(r['step'], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        return ([s for s, _ in pts], [v for _, v in pts]) if pts else None

    lines = {'loss': [('train', series('train_loss')), ('val', series('val_loss'))],
             'regularizer': [('reg', series('reg_loss')), ('kd', series('kd_loss'))],
             'learning rate': [('lr', series('lr')), ('emb_lr', series('emb_lr'))],
             'grad norm (before clipping)': [('grad_norm', series('grad_norm'))]}
    panels = {name: [(label, s) for label, s in curves if s] for name, curves in lines.items()}
    panels = {name: curves for name, curves in panels.items() if curves}
    probe = [(r['step'], r['mean_cossim']) for r in records if isinstance(r.get('mean_cossim'), list) and
             r['mean_cossim'] and all(isinstance(c, (int, float)) for c in r['mean_cossim'])]  # a hand-edited line
    probe = [(s, c) for s, c in probe if len(c) == len(probe[-1][1])] if probe else []  # one model, one depth
    n = len(panels) + bool(probe)
    if n == 0:
        raise ValueError("metrics.jsonl holds no step with a loss yet")
    fig = Figure(figsize=(3.4 * n, 3.2), layout='constrained')
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (name, curves) in zip(axes, panels.items()):
        for label, (steps, values) in curves:
            ax.plot(steps, values, label=label, marker='o' if len(steps) < 3 else None, ms=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel('step')
        ax.ticklabel_format(axis='y', style='sci', scilimits=(-3, 4))
        if len(curves) > 1:
            ax.legend(fontsize=7)
    if probe:
        ax = axes[-1]
        steps = [s for s, _ in probe]
        cos = np.array([c for _, c in probe]).T  # (hidden states, evals)
        # one column per eval, centred on its step; evenly spaced columns when the evals are (the usual case)
        im = ax.imshow(cos, origin='lower', aspect='auto', cmap='Reds', vmin=min(0.0, float(cos.min())), vmax=1,
                       interpolation='nearest',
                       extent=[-0.5, len(steps) - 0.5, -0.5, cos.shape[0] - 0.5])
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels([str(s) for s in steps], rotation=45 if len(steps) > 6 else 0, fontsize=7)
        ax.set_xlabel('eval step')
        ax.set_ylabel('hidden state (0 = embedding)')
        ax.set_title('mean cosine by hidden state', fontsize=9)
        fig.colorbar(im, ax=ax)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


if __name__ == '__main__':
    # python figures.py out-demo            -> out-demo/training.png, drawn from out-demo/metrics.jsonl
    import sys
    if len(sys.argv) != 2 or sys.argv[1].startswith('-'):
        sys.exit("usage: python figures.py <run out_dir or metrics.jsonl>   (draws training.png beside it)")
    source = sys.argv[1]
    try:
        records = read_metrics(source)
        folder = source if os.path.isdir(source) else os.path.dirname(source) or '.'
        out = os.path.join(folder, 'training.png')
        plot_training(records, out, title=os.path.basename(os.path.abspath(folder)))
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    print(f"wrote {out} ({len(records)} records)")
