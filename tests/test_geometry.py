"""measure.py's geometry measures beyond the mean cosine (effective rank, IsoScore, top-k PCA variance share, the
off-diagonal mean cosine) against independent references: the `isoscore` package (PyPI, Rudman et al.'s own code),
numpy's SVD in float64, and closed forms on constructed inputs; streaming over batches; the CLI on tiny HF models
(ours and transformers', disk offload included) and on a train.py snapshot series; the figures; train.py's probe.

python -m pytest -q tests/test_geometry.py
"""
import csv
import json
import os

import numpy as np
import pytest
import torch

import figures
from conftest import run_in_process
from condensation import (effective_rank, geometry, isoscore, measure_run, offdiag_cossim, parse_measures,
                          pca_variance_share)
from test_measure import (cli_error, hf_dirs, hf_hidden, make_ckpt, run_cli, token_dataset,  # noqa: F401 (fixtures)
                          val_windows)
ALL = ['mean_cossim', 'mean_cossim_offdiag', 'effective_rank', 'isoscore', 'pca_top1', 'pca_top10']


# -----------------------------------------------------------------------------
# independent references: numpy float64 on each window's [T, d] points

def unit(points):
    """The authors' normalize in numpy: x / max(||x||, 1e-3) per row."""
    points = np.asarray(points, dtype=np.float64)
    return points / np.maximum(np.linalg.norm(points, axis=-1, keepdims=True), 1e-3)


def ref_effective_rank(points):
    s = np.linalg.svd(points, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def ref_pca_share(points, k):
    s = np.linalg.svd(points - points.mean(0), compute_uv=False)  # principal variances ~ s^2
    return float((s[:k] ** 2).sum() / (s ** 2).sum())


def ref_offdiag(points):
    c = points @ points.T
    T = len(points)
    return float((c.sum() - np.trace(c)) / (T * (T - 1)))


def ref_isoscore(points):
    from IsoScore.IsoScore import IsoScore
    return float(IsoScore(np.asarray(points, dtype=np.float64)))


def ref_measures(points):
    """One window's [T, d] hidden state -> every measure of ALL, on its unit tokens."""
    x = unit(points)
    T = len(x)
    return dict(mean_cossim=float((x @ x.T).mean()), mean_cossim_offdiag=ref_offdiag(x),
                effective_rank=ref_effective_rank(x), isoscore=ref_isoscore(x), pca_top1=ref_pca_share(x, 1),
                pca_top10=ref_pca_share(x, min(10, T)))


def ref_run(hidden_per_window):
    """Per window, per layer -> {measure: per-layer mean over the windows}."""
    per = [[ref_measures(h) for h in layers] for layers in hidden_per_window]
    return {m: np.mean([[w[layer][m] for layer in range(len(w))] for w in per], axis=0) for m in ALL}


def one(fn, points, *args):
    return fn(torch.as_tensor(np.asarray(points))[None], *args).item()


# -----------------------------------------------------------------------------
# the references themselves

@pytest.mark.parametrize('T,d', [(40, 12), (12, 40), (64, 64)])
def test_isoscore_equals_the_isoscore_package(T, d):
    """Our IsoScore is the participation ratio of the covariance, (PR - 1) / (d - 1), with no eigendecomposition;
    the package follows the paper's steps (PCA, normalize, isotropy defect, rescale). Same points, same score, for
    more points than dimensions and fewer, anisotropic and correlated clouds, raw and unit-normalized."""
    rng = np.random.default_rng(T * d)
    mixing = rng.standard_normal((d, d)) * rng.uniform(0.05, 3.0, d)  # unequal, correlated directions
    for points in (rng.standard_normal((T, d)) @ mixing + 5.0, rng.standard_normal((T, d))):
        for p in (points, unit(points)):
            assert one(isoscore, p) == pytest.approx(ref_isoscore(p), abs=1e-6)
    # the package's own edge: a point cloud spanning exactly one direction scores 0
    line = np.outer(rng.standard_normal(T), rng.standard_normal(d))
    assert one(isoscore, line) == pytest.approx(0.0, abs=1e-9) == pytest.approx(ref_isoscore(line), abs=1e-6)


def test_effective_rank_and_pca_share_equal_numpy_svd_in_float64():
    rng = np.random.default_rng(0)
    cases = [rng.standard_normal((30, 20)), rng.standard_normal((20, 30)),
             rng.standard_normal((50, 3)) @ rng.standard_normal((3, 16)),      # rank 3 in 16 dims
             rng.standard_normal((24, 24)) * np.geomspace(1, 1e-3, 24)]        # a decaying spectrum
    for points in cases:
        assert one(effective_rank, points) == pytest.approx(ref_effective_rank(points), rel=1e-9)
        for k in (1, 2, 5):
            assert one(pca_variance_share, points, k) == pytest.approx(ref_pca_share(points, k), rel=1e-9)
        assert one(offdiag_cossim, unit(points)) == pytest.approx(ref_offdiag(unit(points)), abs=1e-12)


# -----------------------------------------------------------------------------
# closed forms

def test_orthonormal_tokens_have_rank_T_and_no_off_diagonal_cosine():
    T, d = 16, 40
    q = np.linalg.qr(np.random.default_rng(1).standard_normal((d, T)))[0].T  # T orthonormal rows
    values = {m: v[0, 0].item() for m, v in geometry([torch.as_tensor(q * 7.0, dtype=torch.float32)[None]],
                                                     parse_measures('all')).items()}
    assert values['effective_rank'] == pytest.approx(T, abs=1e-5)
    assert values['mean_cossim_offdiag'] == pytest.approx(0.0, abs=1e-6)
    assert values['mean_cossim'] == pytest.approx(1 / T, abs=1e-6)
    # centered, T orthonormal points leave T - 1 equal variances: PR = T - 1, the bound (T - 2) / (d - 1)
    assert values['isoscore'] == pytest.approx((T - 2) / (d - 1), abs=1e-6)
    assert values['pca_top1'] == pytest.approx(1 / (T - 1), abs=1e-6)
    assert values['pca_top10'] == pytest.approx(10 / (T - 1), abs=1e-6)


def test_identical_tokens_have_rank_one_and_cosine_one():
    h = torch.randn(3, 1, 24).repeat(1, 10, 1) * torch.tensor([1.0, 30.0, 1e3])[:, None, None]
    values = geometry([h], parse_measures('all'))
    for m, expected in dict(effective_rank=1.0, mean_cossim=1.0, mean_cossim_offdiag=1.0, isoscore=0.0,
                            pca_top1=1.0, pca_top10=1.0).items():
        np.testing.assert_allclose(values[m][0].numpy(), expected, atol=1e-6, err_msg=m)


@pytest.mark.parametrize('k', [1, 3, 7])
def test_equal_singular_values_give_effective_rank_k(k):
    """Rank k with k equal singular values: U V^T (any scale), and as unit tokens: T = 5k tokens, each of k
    orthonormal directions taken by 5 of them. The isotropic cloud +-e_1 .. +-e_d scores IsoScore 1."""
    rng = np.random.default_rng(k)
    u = np.linalg.qr(rng.standard_normal((30, k)))[0]
    v = np.linalg.qr(rng.standard_normal((20, k)))[0]
    assert one(effective_rank, 3.0 * u @ v.T) == pytest.approx(k, abs=1e-6)
    tokens = np.repeat(v.T, 5, axis=0)
    assert geometry([torch.as_tensor(tokens)[None]], ['effective_rank'])['effective_rank'].item() == \
        pytest.approx(k, abs=1e-6)
    if k > 1:  # IsoScore needs d >= 2
        cross = np.concatenate([np.eye(k), -np.eye(k)])
        assert one(isoscore, cross) == pytest.approx(1.0, abs=1e-9)
        assert one(pca_variance_share, cross, 1) == pytest.approx(1 / k, abs=1e-9)


# -----------------------------------------------------------------------------
# streaming: measure_run over batches equals the per-window average computed directly

def measure_hidden(hidden, batch_size, measures='all'):
    B, T = hidden[0].shape[:2]
    windows = np.repeat(np.arange(B)[:, None], T, axis=1)  # window b holds id b: the stand-in model returns h[b]
    return measure_run(lambda idx: [h[idx[:, 0]] for h in hidden], windows, list(range(B)), batch_size, 'cpu',
                       keep_matrices=False, measures=measures, name='x')


def test_streaming_over_batches_equals_the_per_window_average():
    torch.manual_seed(0)
    hidden = [(torch.randn(7, 20, 12) + torch.randn(12) * s) * 50 for s in (0.2, 1.0, 4.0)]
    ref = ref_run([[h[b].numpy() for h in hidden] for b in range(7)])
    for batch_size in (1, 3, 7):
        out = measure_hidden(hidden, batch_size)
        assert out['measures'] == ALL
        for m in ALL:
            np.testing.assert_allclose(out[m], ref[m], rtol=1e-6, atol=1e-6, err_msg=f'{m}, batches of {batch_size}')
    default = measure_hidden(hidden, 3, measures=None)
    assert not set(ALL[1:]) & set(default) and 'measures' not in default  # the default record is unchanged
    assert default['mean_cossim'] == pytest.approx(out['mean_cossim'], abs=1e-9)


# -----------------------------------------------------------------------------
# the CLI: our model.py (GPT-2), transformers' (BLOOM, on CPU and offloaded to disk), train.py snapshots

def test_cli_measures_hf_models_like_numpy_and_the_default_output_is_unchanged(hf_dirs, token_dataset, tmp_path,
                                                                                monkeypatch):
    common = [f'--dataset={token_dataset}', '--num_samples=5', '--seq_len=16', '--batch_size=2', '--seed=4',
              '--histograms=False']  # no heatmaps to draw: the test's time goes to the measures
    models = f"--init_from={hf_dirs['gpt2']},{hf_dirs['bloom']}"
    run_cli([models, *common, f'--out_dir={tmp_path / "all"}', '--device=cpu', '--measures=all'])
    assert sorted(p.name for p in (tmp_path / 'all').glob('trend_*.png')) == sorted(f'trend_{m}.png' for m in ALL[1:])
    # the PNGs drawn are checked: below, figures are made but not rendered (a figure's file is still written, empty,
    # so the check that the plain run draws no measure's trend keeps its meaning)
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', lambda self, *args, **kwargs: None)
    run_cli([models, *common, f'--out_dir={tmp_path / "plain"}', '--device=cpu'])
    assert not list((tmp_path / 'plain').glob('trend_*.png')) and (tmp_path / 'plain' / 'trend.png').exists()
    run_cli([f"--init_from={hf_dirs['bloom']}", *common, f'--out_dir={tmp_path / "split"}', '--measures=all',
             '--device_map=auto', '--max_memory=cpu:100KB', f'--offload_folder={tmp_path / "offload"}'])
    plain = json.load(open(tmp_path / 'plain' / 'condensation.json'))['runs']
    runs = json.load(open(tmp_path / 'all' / 'condensation.json'))['runs']
    windows, _ = val_windows(token_dataset, 5, 16, 4)
    for run, base, directory in zip(runs, plain, (hf_dirs['gpt2'], hf_dirs['bloom'])):
        ref = ref_run(hf_hidden(directory, windows))
        assert run['measures'] == ALL
        for m in ALL:
            np.testing.assert_allclose(run[m], ref[m], rtol=1e-5, atol=1e-5, err_msg=f"{run['name']}: {m}")
        assert set(run) - set(base) == set(ALL[1:]) | {'measures'}  # the same record, plus the measures
        assert not set(ALL[1:]) & set(base)
        assert {k: v for k, v in run.items() if k in base and k != 'seconds'} == \
            {k: v for k, v in base.items() if k != 'seconds'}
    split = json.load(open(tmp_path / 'split' / 'condensation.json'))
    assert split['device'] == 'cpu, weights on cpu+disk'
    assert {m: split[m] for m in ALL} == {m: runs[1][m] for m in ALL}      # offloading changes nothing
    rows = list(csv.DictReader(open(tmp_path / 'all' / 'condensation.csv')))
    assert float(rows[0]['isoscore_last_1']) == pytest.approx(runs[0]['isoscore'][-1])
    assert float(rows[1]['effective_rank_all']) == pytest.approx(np.mean(runs[1]['effective_rank']))
    header = next(csv.reader(open(tmp_path / 'plain' / 'condensation.csv')))
    assert header == ['name', 'step', 'n_params', 'n_layers', 'num_samples', 'seq_len', 'spearman', 'kendall',
                      'mean_first', 'mean_last_1', 'mean_last_half', 'mean_all']
    # asking for the measures in an out_dir measured without them measures again, rather than reusing the old run;
    # the runs measured there before are kept beside the new ones (condensation.json is a table of measurements)
    run_cli([models, *common, f'--out_dir={tmp_path / "plain"}', '--device=cpu', '--measures=isoscore'])
    again = json.load(open(tmp_path / 'plain' / 'condensation.json'))['runs']
    assert [r['isoscore'] for r in again if 'isoscore' in r] == [r['isoscore'] for r in runs]
    assert [r for r in again if 'isoscore' not in r] == plain


def test_snapshot_series_with_measures_draws_them_over_steps(token_dataset, tmp_path):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    models = {s: make_ckpt(run_dir / f'ckpt_{s:06d}.pt', s, token_dataset, s) for s in (10, 20)}
    out = tmp_path / 'snap'
    run_cli([f'--ckpt={run_dir}', '--snapshots=True', '--num_samples=4', '--seq_len=16', '--batch_size=3',
             f'--out_dir={out}', '--measures=effective_rank,pca_top2', '--histograms=False'])
    runs = json.load(open(out / 'condensation.json'))['runs']
    assert [r['step'] for r in runs] == [10, 20]
    windows = torch.as_tensor(np.stack([np.fromfile(os.path.join(token_dataset, 'val.bin'), dtype=np.uint16)
                                        [s:s + 16] for s in runs[0]['starts']]).astype(np.int64))
    for run in runs:
        with torch.no_grad():
            hidden = models[run['step']](windows, return_hidden=True)[2]
        for m, fn in (('effective_rank', ref_effective_rank), ('pca_top2', lambda p: ref_pca_share(p, 2))):
            expected = [np.mean([fn(unit(h[b].numpy())) for b in range(4)]) for h in hidden]
            np.testing.assert_allclose(run[m], expected, rtol=1e-5, err_msg=m)
    assert (out / 'steps.png').exists() and (out / 'trend_effective_rank.png').exists()


def test_bad_measures_are_one_line_and_write_nothing(token_dataset, tmp_path, capsys):
    out = tmp_path / 'never'
    code, line = cli_error([f"--init_from={tmp_path / 'model'}", f'--dataset={token_dataset}', '--seq_len=16',
                            f'--out_dir={out}', '--measures=isoscore,erank'], capsys)
    assert code == 2 and line.startswith('error:') and "'erank'" in line and 'pca_top<k>' in line
    assert not out.exists()


# -----------------------------------------------------------------------------
# the figures draw the numbers of the dicts

def test_trend_and_steps_figures_draw_the_measure(tmp_path):
    runs = [dict(name=f'r{s}', step=s, n_params=None, mean_cossim=[0.1, 0.2 + s / 100, 0.4],
                 effective_rank=[9.0, 5.0 + s / 10, 3.0], spearman=1.0, kendall=1.0) for s in (10, 20)]
    fig = figures.plot_trend(runs, str(tmp_path / 't.png'), measure='effective_rank')
    left, right = fig.axes[:2]
    assert [list(line.get_ydata()) for line in left.lines] == [r['effective_rank'] for r in runs]
    assert left.get_ylabel() == 'effective rank (dimensions)'
    assert [list(line.get_ydata()) for line in right.lines] == [[3.0, 3.0], [np.mean(runs[0]['effective_rank']),
                                                                             np.mean(runs[1]['effective_rank'])]]
    assert list(right.lines[0].get_xdata()) == [10, 20]                          # a snapshot series: by step
    fig = figures.plot_steps(runs, str(tmp_path / 's.png'), ['mean_cossim', 'effective_rank'])
    assert [list(line.get_ydata()) for line in fig.axes[1].lines] == [[9.0, 9.0], [6.0, 7.0], [3.0, 3.0]]
    assert [list(line.get_xdata()) for line in fig.axes[0].lines][0] == [10, 20]
    assert (tmp_path / 't.png').exists() and (tmp_path / 's.png').exists()


# -----------------------------------------------------------------------------
# train.py's live probe: metrics.jsonl records the measures asked for under their names

def test_train_probe_logs_the_measures(tmp_path, monkeypatch):
    import matplotlib.figure
    from test_train import TINY
    # training.png is not checked here: not drawn (rendering is most of a tiny run's time)
    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', lambda self, *args, **kwargs: None)
    d = tmp_path / 'data'
    d.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (('train', 4000), ('val', 2000)):
        rng.integers(0, 256, n).astype(np.uint16).tofile(d / f'{split}.bin')
    (d / 'meta.json').write_text(json.dumps(dict(tokenizer='byte', dtype='uint16', vocab_size=257, eot_token=256)))
    args = [f'--dataset={d}', f'--out_dir={tmp_path / "run"}', *TINY, '--max_iters=4', '--eval_interval=2',
            '--eval_measures=all', '--condensation_samples=4']
    r = run_in_process('train.py', *args)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    evals = [json.loads(line) for line in open(tmp_path / 'run' / 'metrics.jsonl') if '"val_loss"' in line]
    assert [e['step'] for e in evals] == [2, 4]
    T = 32
    for e in evals:
        for m in ALL:
            assert len(e[m]) == 3, m  # embedding + 2 blocks
        # every window's tokens are unit vectors, so per window (and in any average) offdiag = (T cos - 1) / (T - 1)
        np.testing.assert_allclose(e['mean_cossim_offdiag'], [(T * c - 1) / (T - 1) for c in e['mean_cossim']],
                                   atol=1e-9)
        assert all(1 <= v <= T for v in e['effective_rank']) and all(0 <= v <= 1 for v in e['isoscore'])
        assert all(a <= b + 1e-12 for a, b in zip(e['pca_top1'], e['pca_top10']))
    # a measure that does not exist: one line, exit 2, before anything is written
    keep = [a for a in args if not a.startswith(('--out_dir=', '--eval_measures='))]
    bad = run_in_process('train.py', *keep, '--eval_measures=mean_cossim,erank', f'--out_dir={tmp_path / "never"}')
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: eval_measures: unknown")
    assert not (tmp_path / 'never').exists()
