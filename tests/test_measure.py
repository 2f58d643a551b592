"""measure.py: the condensation metric against an independent numpy computation on tiny HF models (GPT-2,
Qwen3, BLOOM, Qwen2 and a model with its own modeling code; random weights, hidden states from transformers
itself), closed-form answers, snapshot series, model families (resumed after an interruption, in pairs), big-model
placement with disk offload, hub revision patterns, text input with a locally built tokenizer, and one-line
errors for bad input; figures.py: every figure shows the run dicts' numbers, and importing measure.py (as
train.py does) loads no matplotlib.

HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q tests/test_measure.py
"""
import csv
import dataclasses
import json
import os
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
import torch

import condensation
import figures
import measure
from conftest import run_in_process
from condensation import mean_cossim, measure_run, normalize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = 97
WORDS = ("the a of to and in is it that for on with as was by at from this be are or an not which but have "
         "one all their has were they more when will can there been its two into time only other new some "
         "could these may first then do any like my now over such our man me even most made after also did "
         "many before must through back years where much your way well down should because each just those").split()


# -----------------------------------------------------------------------------
# an independent reference: float64 numpy, per-window matrices, scipy's rank correlations

def ref_condensation(hidden_per_window):
    """hidden_per_window: list over windows of lists over layers of [T, d] arrays -> means, hists, rho, tau."""
    n_layers = len(hidden_per_window[0])
    avg = []
    for layer in range(n_layers):
        mats = []
        for win in hidden_per_window:
            x = np.asarray(win[layer], dtype=np.float64)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-3)
            mats.append(np.clip(x @ x.T, -1, 1))
        avg.append(np.mean(mats, axis=0))
    means = np.array([a.mean() for a in avg])
    counts = [np.histogram(a.ravel(), bins=128, range=(-1, 1))[0] for a in avg]
    return means, counts, ref_spearman(means), ref_kendall(means)


def ref_spearman(y):
    return scipy.stats.spearmanr(np.arange(len(y)), y).statistic


def ref_kendall(y):
    return scipy.stats.kendalltau(np.arange(len(y)), y).statistic


def counts_of(density, T):  # density histogram -> entry counts (bin width 2/128)
    return np.asarray(density) * T * T * (2 / 128)


def measure_hidden(hidden, batch_size=None, keep_matrices=True):
    """measure_run on given hidden states [B, T, d]: window b holds token id b everywhere, and the stand-in model
    returns window b's states."""
    B, T = hidden[0].shape[:2]
    windows = np.repeat(np.arange(B)[:, None], T, axis=1)
    return measure_run(lambda idx: [h[idx[:, 0]] for h in hidden], windows, list(range(B)), batch_size or B, 'cpu',
                       keep_matrices=keep_matrices, name='x')


# -----------------------------------------------------------------------------
# fixtures: tiny HF models with a local tokenizer, a token dataset, a text file

def save_tokenizer(directory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {w: i for i, w in enumerate(['[UNK]', '[EOS]'] + WORDS)}
    assert len(vocab) <= VOCAB
    tok = Tokenizer(models.WordLevel(vocab, unk_token='[UNK]'))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token='[UNK]', eos_token='[EOS]').save_pretrained(directory)


@pytest.fixture(scope='module')
def hf_dirs(tmp_path_factory):
    from transformers import (BloomConfig, BloomForCausalLM, GPT2Config, GPT2LMHeadModel, Qwen2Config,
                              Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    root = tmp_path_factory.mktemp('hf')
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=4, n_head=2))
    qwen3 = Qwen3ForCausalLM(Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                                         num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                         max_position_embeddings=32, tie_word_embeddings=True))
    # through transformers, not our model.py: BLOOM (ALiBi, tied head) and Qwen2 (an untied head)
    bloom = BloomForCausalLM(BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=3, n_head=4))
    qwen2 = Qwen2ForCausalLM(Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                         tie_word_embeddings=False))
    dirs = {}
    for name, m in (('gpt2', gpt2), ('qwen3', qwen3), ('bloom', bloom), ('qwen2', qwen2)):
        dirs[name] = str(root / name)
        m.save_pretrained(dirs[name])
        save_tokenizer(dirs[name])
    return dirs


@pytest.fixture(scope='module')
def token_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp('ds')
    rng = np.random.default_rng(1)
    for split, n in (('train', 500), ('val', 400)):
        rng.integers(0, VOCAB, n).astype(np.uint16).tofile(d / f'{split}.bin')
    (d / 'meta.json').write_text(json.dumps(dict(tokenizer='byte', dtype='uint16', vocab_size=257, eot_token=256)))
    return str(d)


@pytest.fixture
def no_png(monkeypatch):
    """For a test that reads no PNG: the figures are made, not rendered (rendering is most of a small run's time)."""
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', lambda self, *args, **kwargs: None)


def run_cli(args):
    """measure.py in-process with fresh module globals (runpy), as `python measure.py args`."""
    old = sys.argv
    sys.argv = ['measure.py'] + list(args)
    try:
        runpy.run_path(os.path.join(ROOT, 'measure.py'), run_name='__main__')
    finally:
        sys.argv = old


def cli_error(args, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(args)
    err = capsys.readouterr().err.strip().splitlines()
    return e.value.code, err[-1] if err else ''


def hf_hidden(directory, windows, model_class=None):
    """Hidden states from transformers itself (not our model.py; the whole causal LM, head included, not the
    base model measure.py runs): per window, per layer [T, d]."""
    from transformers import AutoModelForCausalLM
    m = (model_class or AutoModelForCausalLM).from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        hs = m(input_ids=torch.as_tensor(windows), output_hidden_states=True).hidden_states
    return [[h[b].numpy() for h in hs] for b in range(len(windows))]


def num_parameters(directory):
    """transformers' own count: every parameter, a tied LM head once."""
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(directory).num_parameters()


def val_windows(token_dataset, n, T, seed):
    """The windows measure.py draws from val.bin: seeded offsets (numpy's default_rng)."""
    val = np.fromfile(os.path.join(token_dataset, 'val.bin'), dtype=np.uint16)
    starts = np.random.default_rng(seed).integers(0, len(val) - T + 1, size=n)
    return np.stack([val[s:s + T] for s in starts]).astype(np.int64), starts.tolist()


# -----------------------------------------------------------------------------
# closed-form answers

def test_identical_tokens_give_one_at_every_layer():
    torch.manual_seed(0)
    hidden = [torch.randn(3, 1, 16).repeat(1, 10, 1) * s for s in (1.0, 5.0, 1e3)]  # 3 windows of 10 equal tokens
    assert mean_cossim(hidden) == pytest.approx([1.0] * 3, abs=1e-6)
    out = measure_hidden(hidden)
    assert out['mean_cossim'] == pytest.approx([1.0] * 3, abs=1e-6)
    for h in out['histograms']:  # all 100 entries in the last bin [1 - 1/64, 1]: density 1 / (2/128) = 64
        assert h[-1] == pytest.approx(64.0) and sum(h[:-1]) == 0
    # exactly constant means have no rank correlation (here they differ by float rounding, so ranks are noise)
    assert condensation.rank_correlations([0.5] * 4) == (None, None)


def test_orthogonal_embeddings_give_one_over_T():
    T, d = 12, 20
    scales = torch.linspace(0.5, 30, T)[:, None]
    layer0 = (torch.eye(T, d) * scales)[None]                            # orthogonal rows of any norms
    tiny = torch.zeros(1, T, d)
    tiny[0, :, 0] = 1e-5                                                 # norm below the authors' 1e-3 floor
    assert mean_cossim([layer0])[0] == pytest.approx(1 / T, abs=1e-7)    # only the diagonal: T / T^2
    # the floor: x / max(||x||, 1e-3) leaves tiny vectors tiny, so their cosines are 1e-4, not 1
    assert normalize(tiny)[0, 0, 0].item() == pytest.approx(1e-2)
    assert mean_cossim([tiny])[0] == pytest.approx(1e-4, rel=1e-5)
    out = measure_hidden([layer0])
    assert out['mean_cossim'][0] == pytest.approx(1 / T, abs=1e-7)
    assert counts_of(out['histograms'][0], T)[64] == pytest.approx(T * T - T)  # zeros fall in bin [0, 1/64)
    assert counts_of(out['histograms'][0], T)[-1] == pytest.approx(T)


def test_matrix_free_mean_equals_clipped_matrix_mean_and_streaming_is_batch_independent():
    torch.manual_seed(0)
    # tokens of large norm around a shared direction, more or less aligned per layer (means in no monotone
    # order); float rounding pushes some cosines of the aligned layers past 1, where the clip acts
    hidden = [(torch.randn(5, 24, 16) + torch.randn(16) * s) * 1e3 for s in (2.0, 0.5, 50.0, 10.0)]
    ref_means, ref_counts, rho, tau = ref_condensation([[h[b].numpy() for h in hidden] for b in range(5)])
    assert mean_cossim(hidden) == pytest.approx(ref_means.tolist(), abs=1e-6)
    results = [measure_hidden(hidden, batch_size, keep_matrices)  # batches of 5; 1 x 5; 2, 2, 1; 4, 1
               for keep_matrices in (True, False) for batch_size in (5, 1, 2, 4)]
    for out in results:
        assert (out['n_layers'], out['num_samples'], out['seq_len'], out['starts']) == (3, 5, 24, [0, 1, 2, 3, 4])
        assert out['mean_cossim'] == pytest.approx(ref_means.tolist(), abs=1e-6)
        assert out['spearman'] == pytest.approx(rho, abs=1e-12) and out['kendall'] == pytest.approx(tau, abs=1e-12)
        assert out['mean_last_n'] == pytest.approx([ref_means[-n:].mean() for n in (1, 2, 3, 4)], abs=1e-6)
    assert all(out['histograms'] == results[0]['histograms'] for out in results[1:4])
    for layer, c in enumerate(ref_counts):
        assert np.abs(counts_of(results[0]['histograms'][layer], 24) - c).sum() <= 2  # a bin-edge entry at most
    assert all(out['histograms'] is None for out in results[4:])
    with pytest.raises(ValueError, match='no windows'):
        measure_run(lambda idx: [idx.float()[..., None]], np.zeros((0, 8), dtype=np.int64), [], 4, 'cpu')


def test_rank_correlations_match_scipy_defaults_with_ties():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 13, 29, 65):
        for y in (rng.normal(size=n), rng.integers(0, 3, size=n).astype(float), np.round(rng.normal(size=n), 1)):
            if np.all(y == y[0]):
                continue
            rho, tau = condensation.rank_correlations(y.tolist())
            assert rho == pytest.approx(ref_spearman(y), abs=1e-12) and tau == pytest.approx(ref_kendall(y), abs=1e-12)
    assert condensation.rank_correlations([0.3]) == (None, None)


# -----------------------------------------------------------------------------
# the CLI against numpy on tiny HF models; a multi-model trend; the side-by-side comparison

def test_hf_models_match_numpy_and_trend_has_one_row_per_model(hf_dirs, token_dataset, tmp_path):
    out = tmp_path / 'trend'
    run_cli([f"--init_from={hf_dirs['gpt2']},{hf_dirs['qwen3']}", f'--dataset={token_dataset}', '--num_samples=6',
             '--seq_len=16', '--batch_size=4', '--seed=3', f'--out_dir={out}', '--device=cpu'])
    runs = json.load(open(out / 'condensation.json'))['runs']
    rows = list(csv.DictReader(open(out / 'condensation.csv')))
    assert [r['name'] for r in runs] == [r['name'] for r in rows] == ['gpt2', 'qwen3']  # local dirs: last component
    assert [r['source'] for r in runs] == [hf_dirs['gpt2'], hf_dirs['qwen3']]
    windows, starts = val_windows(token_dataset, 6, 16, 3)
    for run, row in zip(runs, rows):
        assert run['starts'] == starts and run['num_samples'] == 6 and run['seq_len'] == 16
        assert run['n_params'] == num_parameters(run['source']) == int(row['n_params'])
        means, counts, rho, tau = ref_condensation(hf_hidden(run['source'], windows))
        assert run['n_layers'] == 4 and len(run['mean_cossim']) == 5
        np.testing.assert_allclose(run['mean_cossim'], means, atol=1e-5)
        assert run['spearman'] == pytest.approx(rho, abs=1e-9) and run['kendall'] == pytest.approx(tau, abs=1e-9)
        np.testing.assert_allclose(run['mean_last_n'], [means[-n:].mean() for n in range(1, 6)], atol=1e-5)
        for layer, c in enumerate(counts):
            assert np.abs(counts_of(run['histograms'][layer], 16) - c).sum() <= 2
            assert sum(run['histograms'][layer]) * 2 / 128 == pytest.approx(1.0)  # a density
        assert float(row['spearman']) == pytest.approx(rho, abs=1e-9)
        assert float(row['mean_last_1']) == pytest.approx(means[-1], abs=1e-5)
        assert float(row['mean_last_half']) == pytest.approx(means[-3:].mean(), abs=1e-5)  # n = 5 // 2 + 1
        assert int(row['n_layers']) == 4 and row['step'] == ''
    # a heatmap per model and the trend; no temporary file of the atomic writes left behind
    assert sorted(p.name for p in out.iterdir()) == ['condensation.csv', 'condensation.json', 'heatmap_gpt2.png',
                                                     'heatmap_qwen3.png', 'last_n.png', 'trend.png']
    import matplotlib.image
    one_height, one_width, _ = matplotlib.image.imread(str(out / 'heatmap_gpt2.png')).shape
    assert 1.1 < one_width / one_height < 1.6                          # one panel and its colorbar
    # Figure 7 style: a side-by-side comparison read back from condensation.json files (4 runs: 2 files x 2 models)
    run_cli([f'--compare={out},{out}', f'--out_dir={tmp_path / "cmp"}'])
    assert sorted(p.name for p in (tmp_path / 'cmp').iterdir()) == ['compare.png', 'compare_trend.png']
    height, width, _ = matplotlib.image.imread(str(tmp_path / 'cmp' / 'compare.png')).shape
    assert height == one_height and width > 2.5 * one_width            # four panels in a row, one colorbar
    height, width, _ = matplotlib.image.imread(str(tmp_path / 'cmp' / 'compare_trend.png')).shape
    assert 2.2 < width / height < 3.2                                  # trend and correlations side by side


# -----------------------------------------------------------------------------
# any causal LM through transformers, placed by accelerate; models that run their own code

def test_bloom_and_qwen2_match_transformers_and_disk_offload_changes_nothing(hf_dirs, token_dataset, tmp_path,
                                                                             no_png):
    """BLOOM and Qwen2 (transformers' code, not ours) measured equal to the metric of transformers' own hidden
    states (<= 1e-6); then split with device_map=auto over a CPU budget smaller than either model (~120 and ~165
    KB of weights), which sends the rest to disk: the same numbers, bit for bit."""
    models = f"--init_from={hf_dirs['bloom']},{hf_dirs['qwen2']}"
    common = [models, f'--dataset={token_dataset}', '--num_samples=5', '--seq_len=16', '--batch_size=2', '--seed=7']
    run_cli(common + [f'--out_dir={tmp_path / "whole"}', '--device=cpu'])
    run_cli(common + [f'--out_dir={tmp_path / "split"}', '--device_map=auto', '--max_memory=cpu:100KB',
                      f'--offload_folder={tmp_path / "offload"}'])
    whole = json.load(open(tmp_path / 'whole' / 'condensation.json'))['runs']
    split = json.load(open(tmp_path / 'split' / 'condensation.json'))['runs']
    windows, starts = val_windows(token_dataset, 5, 16, 7)
    for run, directory, n_states in zip(whole, (hf_dirs['bloom'], hf_dirs['qwen2']), (4, 4)):
        means, counts, rho, tau = ref_condensation(hf_hidden(directory, windows))
        assert run['starts'] == starts and len(run['mean_cossim']) == n_states and run['device'] == 'cpu'
        np.testing.assert_allclose(run['mean_cossim'], means, rtol=0, atol=1e-6)
        assert run['spearman'] == pytest.approx(rho, abs=1e-9) and run['kendall'] == pytest.approx(tau, abs=1e-9)
        for layer, c in enumerate(counts):
            assert np.abs(counts_of(run['histograms'][layer], 16) - c).sum() <= 2
        assert run['n_params'] == num_parameters(directory)  # tied (BLOOM) and untied (Qwen2) heads
    for a, b in zip(whole, split):
        assert b['device'] == 'cpu, weights on cpu+disk'   # both memories used: the budget was really binding
        assert {k: v for k, v in a.items() if k not in ('seconds', 'device')} == \
            {k: v for k, v in b.items() if k not in ('seconds', 'device')}


REMOTE_MODELING = """
from transformers import Qwen2Config, Qwen2ForCausalLM


class TinyRemoteConfig(Qwen2Config):
    model_type = 'tiny_remote'


class TinyRemoteForCausalLM(Qwen2ForCausalLM):
    config_class = TinyRemoteConfig
"""


def test_a_model_with_its_own_code_needs_the_flag(token_dataset, tmp_path, monkeypatch):
    """A local model whose config.json maps the Auto classes to its own modeling file (as Qwen1's repositories
    do), unknown to transformers: without --trust_remote_code=True one line naming the flag, exit 1, no code
    run or copied, nothing written; with it, the metric of that model's own hidden states."""
    import importlib.util
    directory = tmp_path / 'remote'
    directory.mkdir()
    (directory / 'modeling_tiny.py').write_text(REMOTE_MODELING)
    spec = importlib.util.spec_from_file_location('modeling_tiny', directory / 'modeling_tiny.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.TinyRemoteForCausalLM(module.TinyRemoteConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=32))
    model.save_pretrained(directory)
    config = json.loads((directory / 'config.json').read_text())
    config['auto_map'] = {'AutoConfig': 'modeling_tiny.TinyRemoteConfig',
                          'AutoModelForCausalLM': 'modeling_tiny.TinyRemoteForCausalLM'}
    (directory / 'config.json').write_text(json.dumps(config))
    # refused here: any fetch of the model's code goes through get_cached_module_file, which copies it into
    # HF_MODULES_CACHE (both redirected, and the fetch recorded)
    import transformers.dynamic_module_utils as dynamic
    fetched = []
    monkeypatch.setattr(dynamic, 'HF_MODULES_CACHE', str(tmp_path / 'modules'))
    monkeypatch.setattr(dynamic, 'get_cached_module_file', lambda *a, **kw: fetched.append(a) or 1 / 0)
    args = [f'--init_from={directory}', f'--dataset={token_dataset}', '--num_samples=3', '--seq_len=16',
            f'--out_dir={tmp_path / "out"}']
    p = run_in_process(os.path.join(ROOT, 'measure.py'), *args, cwd=tmp_path)
    assert p.returncode == 1 and p.stderr.strip() == (
        f"error: cannot load model '{directory}': it runs its own modeling code (config.json's auto_map): read that "
        "code, then pass --trust_remote_code=True")
    assert not fetched and not (tmp_path / 'out').exists() and not (tmp_path / 'modules').exists()
    # trusted, in a fresh process: transformers reads HF_MODULES_CACHE at import, and the model's code is imported
    # there, not here; all that process prints to stderr is checked too: progress bars, and no other line (no
    # warning from its imports or from loading the model)
    p = subprocess.run([sys.executable, os.path.join(ROOT, 'measure.py'), *args, '--trust_remote_code=True'],
                       capture_output=True, text=True, cwd=tmp_path, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, HF_MODULES_CACHE=str(tmp_path / 'modules'), OMP_NUM_THREADS='1'))
    assert p.returncode == 0, p.stderr
    lines = [line.strip() for line in re.split('[\r\n]', p.stderr) if line.strip()]
    assert lines and all(re.match(r'(Loading weights|batches): +\d+%\|', line) for line in lines), p.stderr
    assert (tmp_path / 'modules').is_dir()  # the code was copied where HF_MODULES_CACHE says
    result = json.load(open(tmp_path / 'out' / 'condensation.json'))
    windows, _ = val_windows(token_dataset, 3, 16, 0)
    means, _, rho, _ = ref_condensation(hf_hidden(str(directory), windows, module.TinyRemoteForCausalLM))
    np.testing.assert_allclose(result['mean_cossim'], means, rtol=0, atol=1e-6)
    assert result['spearman'] == pytest.approx(rho, abs=1e-9)


# -----------------------------------------------------------------------------
# families: resumed after an interruption; base and distilled models in pairs; hub revision patterns

def test_an_interrupted_family_run_measures_only_what_is_missing(hf_dirs, token_dataset, tmp_path, capsys,
                                                                  monkeypatch):
    import shutil
    late = tmp_path / 'late'
    late.mkdir()
    shutil.copy(os.path.join(hf_dirs['qwen2'], 'config.json'), late)
    (late / 'model.safetensors').write_bytes(b'not yet downloaded')  # the second model fails to load
    out = tmp_path / 'family'
    args = [f"--init_from={hf_dirs['gpt2']},{late}", f'--dataset={token_dataset}', '--num_samples=4',
            '--seq_len=16', f'--out_dir={out}']
    code, msg = cli_error(args, capsys)
    assert code == 1 and msg.startswith(f"error: cannot load model '{late}'")
    first = json.load(open(out / 'condensation.json'))  # written after the first model: one run, flat
    assert first['name'] == 'gpt2' and sorted(p.name for p in out.iterdir()) == ['condensation.csv',
                                                                                   'condensation.json']
    for f in ('config.json', 'model.safetensors'):
        shutil.copy(os.path.join(hf_dirs['qwen2'], f), late)
    run_cli(args)
    printed = capsys.readouterr().out
    assert 'kept gpt2: measured before' in printed and 'measuring gpt2' not in printed
    assert 'measuring late' in printed
    runs = json.load(open(out / 'condensation.json'))['runs']
    assert runs[0] == first and runs[1]['name'] == 'late'  # the first record as it was, seconds included
    windows, _ = val_windows(token_dataset, 4, 16, 0)
    np.testing.assert_allclose(runs[1]['mean_cossim'], ref_condensation(hf_hidden(str(late), windows))[0], atol=1e-6)
    assert sorted(p.name for p in out.iterdir()) == ['condensation.csv', 'condensation.json', 'heatmap_gpt2.png',
                                                     'heatmap_late.png', 'last_n.png', 'trend.png']
    # the PNGs are checked: the runs below draw figures that no assertion reads (rendering is most of their time)
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', lambda self, *args, **kwargs: None)
    trend = figures.plot_trend(runs, str(tmp_path / 't.png')).axes[1]  # the family plot, from the JSON
    assert list(trend.get_lines()[0].get_xdata()) == [r['n_params'] for r in runs] == [num_parameters(hf_dirs['gpt2']),
                                                                                          num_parameters(str(late))]
    assert list(trend.get_lines()[1].get_ydata()) == [r['kendall'] for r in runs]
    run_cli(args)  # all measured: nothing is measured again, the figures are redrawn
    assert 'measuring' not in capsys.readouterr().out and json.load(open(out / 'condensation.json'))['runs'] == runs
    shutil.copy(os.path.join(hf_dirs['qwen2'], 'model.safetensors'), late)  # a model rewritten since: measured again
    run_cli(args)
    printed = capsys.readouterr().out
    assert 'kept gpt2' in printed and 'measuring late' in printed and printed.count('measuring') == 1
    run_cli(args + ['--seed=1'])  # other windows are another measurement
    assert capsys.readouterr().out.count('measuring') == 2


def test_pairs_draw_base_against_distilled_from_the_json(hf_dirs, token_dataset, tmp_path, capsys):
    out = tmp_path / 'pairs'
    names = ['gpt2', 'bloom', 'qwen3', 'qwen2']  # bases gpt2, bloom; their "distilled": qwen3, qwen2
    args = [f"--init_from={','.join(hf_dirs[n] for n in names)}", f'--dataset={token_dataset}', '--num_samples=3',
            '--seq_len=16', f'--out_dir={out}', '--histograms=False']  # no heatmaps: the pairs are what is drawn here
    code, msg = cli_error([f"--init_from={','.join(hf_dirs[n] for n in names[:3])}"] + args[1:] + ['--pairs=True'],
                          capsys)
    assert code == 1 and msg == ('error: --pairs=True takes base models, then as many distilled ones, in that '
                                 'order; got 3') and not out.exists()
    run_cli(args + ['--pairs=True'])
    assert {'pairs.png', 'trend.png', 'last_n.png'} <= {p.name for p in out.iterdir()}
    runs = figures.load_runs(str(out))
    fig = figures.plot_pairs(runs, str(tmp_path / 'p.png'))
    spearman, kendall, layers = fig.axes
    sizes = [runs[0]['n_params'], runs[1]['n_params']]                 # the bases' sizes, log x
    for ax, key in ((spearman, 'spearman'), (kendall, 'kendall')):
        base, distilled = ax.get_lines()[:2]
        assert list(base.get_xdata()) == sizes and ax.get_xscale() == 'log'
        assert list(base.get_ydata()) == [runs[0][key], runs[1][key]]
        assert list(distilled.get_ydata()) == [runs[2][key], runs[3][key]]
    curves = layers.get_lines()                                         # base, distilled of pair 1, then pair 2
    assert [list(c.get_ydata()) for c in curves] == [runs[i]['mean_cossim'] for i in (0, 2, 1, 3)]
    assert [c.get_linestyle() for c in curves] == ['-', '--', '-', '--']
    assert curves[0].get_color() == curves[1].get_color() != curves[2].get_color()


class Refs:  # what huggingface_hub.list_repo_refs returns, as far as measure.py reads it
    def __init__(self, names):
        self.branches = [type('Branch', (), {'name': n}) for n in names]


def test_revision_patterns_list_branches_in_training_order(monkeypatch, capsys, tmp_path):
    import huggingface_hub
    olmo2 = ['main', 'stage1-step10000-tokens42B', 'stage1-step1000-tokens5B', 'stage1-step2000-tokens9B',
             'stage2-ingredient1-step1000-tokens5B', 'stage1-step100000-tokens420B']
    olmo3 = ['stage1-step1413814', 'stage1-step0', 'stage1-step200000', 'stage1-step1000', 'stage2-step47684',
             'stage3-step11921', 'main']
    asked = []
    monkeypatch.setattr(huggingface_hub, 'list_repo_refs',
                        lambda repo: asked.append(repo) or Refs(olmo2 if repo == 'o/two' else olmo3))
    assert measure.hub_revisions('o/two@stage1-*') == [
        'o/two@stage1-step1000-tokens5B', 'o/two@stage1-step2000-tokens9B', 'o/two@stage1-step10000-tokens42B',
        'o/two@stage1-step100000-tokens420B']                          # by tokens, not as text
    assert measure.hub_revisions('o/three@stage*') == [
        'o/three@stage1-step0', 'o/three@stage1-step1000', 'o/three@stage1-step200000', 'o/three@stage1-step1413814',
        'o/three@stage2-step47684', 'o/three@stage3-step11921']        # stage, then step (no tokens in the names)
    assert measure.hub_revisions('o/three@stage1-step*00000') == ['o/three@stage1-step200000']
    assert measure.hub_revisions('o/three@main') == ['o/three@main'] and asked == ['o/two', 'o/three', 'o/three']
    with pytest.raises(ValueError, match=r"no revision of 'o/three' matches 'stage9-\*' \(it has 7 branches\)"):
        measure.hub_revisions('o/three@stage9-*')
    # a dry run lists nothing, so it stays offline
    run_cli(['--init_from=o/three@stage1-*', '--dry_run=True', f'--out_dir={tmp_path / "o"}'])
    assert json.loads(capsys.readouterr().out)['models'] == ['o/three@stage1-*'] and len(asked) == 4
    assert not (tmp_path / 'o').exists()


def test_revision_pattern_offline_is_one_line(tmp_path, capsys):
    """The hub is offline in tests (HF_HUB_OFFLINE=1): listing the branches fails on one line, nothing written."""
    code, msg = cli_error(['--init_from=org/model@stage1-*', f'--out_dir={tmp_path / "o"}'], capsys)
    assert code == 1 and msg.startswith("error: cannot list the revisions of 'org/model' on the hub (offline?): ")
    assert not (tmp_path / 'o').exists()


# -----------------------------------------------------------------------------
# figures.py: what each figure draws, read back from the matplotlib Figure

def fake_run(name, step, means, rho, tau, seed):
    hist = np.random.default_rng(seed).uniform(0, 12, size=(len(means), 128))
    return dict(name=name, step=step, mean_cossim=means, spearman=rho, kendall=tau, histograms=hist.tolist())


def test_figures_draw_the_run_dicts(tmp_path):
    runs = [fake_run('base', None, [0.1, 0.3, 0.2, 0.6], 0.8, 2 / 3, 0),
            fake_run('disp', 500, [0.2, 0.2, 0.2, 0.2, 0.2, 0.2], None, None, 1)]
    fig = figures.plot_heatmaps(runs, str(tmp_path / 'h.png'))
    panels = fig.axes[:2]                                              # then the colorbar's axes
    for ax, run in zip(panels, runs):
        np.testing.assert_array_equal(ax.images[0].get_array(), np.array(run['histograms']).T)  # a column per state
        n = len(run['mean_cossim'])
        assert ax.images[0].get_extent() == pytest.approx([-0.5 / (n - 1), 1 + 0.5 / (n - 1), -1, 1])
        assert ax.get_ylim() == (-0.25, 1) and ax.images[0].get_clim() == (0, 10)
    assert [ax.get_title() for ax in panels] == ['base', 'disp (step 500)'] and len(fig.axes) == 3
    fig = figures.plot_trend(runs, str(tmp_path / 't.png'))
    lines, bars = fig.axes
    for line, run in zip(lines.get_lines(), runs):
        np.testing.assert_allclose(line.get_xdata(), np.linspace(0, 1, len(run['mean_cossim'])))
        assert list(line.get_ydata()) == run['mean_cossim']
    heights = [p.get_height() for p in bars.patches]                  # Spearman bars, then Kendall bars
    assert heights[0] == 0.8 and heights[2] == 2 / 3 and np.isnan(heights[1]) and np.isnan(heights[3])
    assert [t.get_text() for t in bars.get_xticklabels()] == ['base', 'disp']
    # a snapshot series (distinct steps): the correlations as lines against the step
    series = [fake_run(f'run step {s}', s, [0.1, 0.2 + s / 1e3, 0.3], r, r, s) for s, r in ((100, 1.0), (300, 0.5))]
    fig = figures.plot_trend(series, str(tmp_path / 's.png'))
    assert [list(line.get_xdata()) for line in fig.axes[1].get_lines()[:2]] == [[100, 300], [100, 300]]
    assert list(fig.axes[1].get_lines()[0].get_ydata()) == [1.0, 0.5] and fig.axes[1].get_xlabel() == 'step'
    assert figures.plot_heatmaps(series[1:], str(tmp_path / 'h1.png')).axes[0].get_title() == 'run step 300'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['h.png', 'h1.png', 's.png', 't.png']  # no temp files


def test_family_trend_and_last_n_are_drawn_against_model_size(tmp_path):
    """A family (distinct parameter counts, no steps): the correlations against n_params on a log axis, in the
    order given; the last-n plot: one line per n (1..5 and L/2), each run's mean of its last n hidden states."""
    means = [[0.1, 0.5, 0.9], [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.6, 0.8], [0.2, 0.3, 0.2, 0.3, 0.25, 0.3, 0.2]]
    runs = []
    for i, (m, size) in enumerate(zip(means, (124_000_000, 355_000_000, 1_500_000_000))):
        run = dict(fake_run(f'model{i}', None, m, *condensation.rank_correlations(m), i), n_params=size)
        runs.append(dict(run, mean_last_n=condensation.layer_trend(m)['mean_last_n']))
    trend = figures.plot_trend(runs, str(tmp_path / 't.png')).axes[1]
    rho, tau = trend.get_lines()[:2]
    assert list(rho.get_xdata()) == [124_000_000, 355_000_000, 1_500_000_000] and trend.get_xscale() == 'log'
    assert list(rho.get_ydata()) == [r['spearman'] for r in runs] and list(tau.get_ydata()) == [r['kendall'] for r in runs]
    assert trend.get_xlabel().startswith('parameters')
    ax = figures.plot_last_n(runs, str(tmp_path / 'n.png')).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == ['last 1', 'last 2', 'last 3', 'last 4', 'last 5', 'last L/2']
    np.testing.assert_allclose(lines['last 1'].get_ydata(), [0.9, 0.8, 0.2])
    np.testing.assert_allclose(lines['last 3'].get_ydata(), [0.5, (0.6 + 0.7 + 0.8) / 3, (0.2 + 0.3 + 0.25) / 3])
    np.testing.assert_array_equal(lines['last 5'].get_ydata()[0], np.nan)  # 3 hidden states have no last 5
    np.testing.assert_allclose(lines['last L/2'].get_ydata(),                # n = L // 2 + 1 of L hidden states
                               [np.mean(m[-(len(m) // 2 + 1):]) for m in means])
    assert list(lines['last 1'].get_xdata()) == [r['n_params'] for r in runs]
    same_size = [dict(r, n_params=1000) for r in runs]                    # no size to order by: one slot per run
    bars = figures.plot_trend(same_size, str(tmp_path / 'b.png')).axes[1]
    assert [t.get_text() for t in bars.get_xticklabels()] == ['model0', 'model1', 'model2']


def test_compare_errors_are_one_line(tmp_path, capsys):
    # (importing measure.py loads no matplotlib: test_a_checkpoint_run_imports_only_what_it_needs)
    assert cli_error([f'--compare={tmp_path / "nowhere"}', f'--out_dir={tmp_path / "o"}'], capsys) == \
        (1, f"error: no condensation.json at '{tmp_path / 'nowhere'}'")
    no_hist = dict(fake_run('x', None, [0.1, 0.2], 1.0, 1.0, 0), histograms=None)
    (tmp_path / 'condensation.json').write_text(json.dumps(no_hist))
    assert cli_error([f'--compare={tmp_path}', f'--out_dir={tmp_path / "o"}'], capsys) == \
        (1, 'error: --compare needs runs measured with histograms=True')
    assert not (tmp_path / 'o').exists()


# -----------------------------------------------------------------------------
# checkpoints of train.py: a snapshot series, one row per step

def make_ckpt(path, step, dataset, seed, block_size=32):
    from model import GPT, GPTConfig
    torch.manual_seed(seed)
    cfg = GPTConfig(block_size=block_size, vocab_size=257, n_layer=3, n_head=2, n_embd=32)
    m = GPT(cfg)
    torch.save({'arch': 'gpt', 'model_args': dataclasses.asdict(cfg), 'model': m.state_dict(), 'optimizer': {},
                'step': step, 'config': {'dataset': dataset}, 'rng': {}, 'data_position': 0,
                'data_meta': dict(tokenizer='byte', dtype='uint16', vocab_size=257, eot_token=256)}, path)
    return m.eval()


def test_snapshot_series_one_row_per_step(token_dataset, tmp_path):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    models = {10: make_ckpt(run_dir / 'ckpt_000010.pt', 10, token_dataset, 1),
              20: make_ckpt(run_dir / 'ckpt_000020.pt', 20, token_dataset, 2)}
    make_ckpt(run_dir / 'ckpt.pt', 20, token_dataset, 2)  # the latest is also step 20: measured once
    out = tmp_path / 'snap'
    # no --dataset: windows come from the checkpoint's own dataset (its val split)
    run_cli([f'--ckpt={run_dir}', '--snapshots=True', '--num_samples=5', '--seq_len=16', '--batch_size=2',
             f'--out_dir={out}'])
    runs = json.load(open(out / 'condensation.json'))['runs']
    rows = list(csv.DictReader(open(out / 'condensation.csv')))
    assert [r['step'] for r in runs] == [10, 20] and [int(r['step']) for r in rows] == [10, 20]
    val = np.fromfile(os.path.join(token_dataset, 'val.bin'), dtype=np.uint16)
    windows = torch.as_tensor(np.stack([val[s:s + 16] for s in runs[0]['starts']]).astype(np.int64))
    for run in runs:
        with torch.no_grad():  # our model's own forward (the measure path skips lm_head: they must agree)
            hidden = models[run['step']](windows, return_hidden=True)[2]
            assert all(torch.equal(a, b) for a, b in zip(models[run['step']].hidden_states(windows), hidden))
        means, counts, rho, tau = ref_condensation([[h[b].numpy() for h in hidden] for b in range(5)])
        np.testing.assert_allclose(run['mean_cossim'], means, atol=1e-6)
        assert run['spearman'] == pytest.approx(rho, abs=1e-9) and run['kendall'] == pytest.approx(tau, abs=1e-9)
        assert run['windows'] == f'dataset:{token_dataset}'
    assert runs[0]['mean_cossim'] != runs[1]['mean_cossim']
    assert sorted(p.name for p in out.glob('heatmap_*.png')) == ['heatmap_grid.png',  # Figure 7's layout: a column per step
                                                                 'heatmap_run_step_10.png', 'heatmap_run_step_20.png']


def reference_means(model, token_dataset, n, T):
    """mean_cossim per hidden state of our model's own forward on the windows measure.py draws (seed 0), by numpy."""
    windows, starts = val_windows(token_dataset, n, T, 0)
    with torch.no_grad():
        hidden = model(torch.as_tensor(windows), return_hidden=True)[2]
    return ref_condensation([[h[b].numpy() for h in hidden] for b in range(n)])[0], starts


def test_default_seq_len_fits_the_model_and_a_given_one_must(token_dataset, tmp_path, capsys, no_png):
    """A demo-sized run (128-token context) measured with the defaults: windows of 128 tokens, and the printout says
    so; a seq_len given on the command line or in a config file that does not fit is refused, nothing written."""
    run_dir = tmp_path / 'out'
    run_dir.mkdir()
    model = make_ckpt(run_dir / 'ckpt.pt', 500, token_dataset, 0, block_size=128)
    assert measure.model_context('ckpt', str(run_dir)) == model.max_seq_len == 128
    out = tmp_path / 'm'
    run_cli([f'--ckpt={run_dir}', '--num_samples=3', f'--out_dir={out}'])
    printed = capsys.readouterr().out
    assert "seq_len: 128 (the model's context; the default 512 does not fit)" in printed
    run = json.load(open(out / 'condensation.json'))
    means, starts = reference_means(model, token_dataset, 3, 128)
    assert run['seq_len'] == 128 and run['starts'] == starts
    np.testing.assert_allclose(run['mean_cossim'], means, atol=1e-6)
    never = tmp_path / 'never'
    config = tmp_path / 'long.py'
    config.write_text('seq_len = 512\n')
    for args in ([f'--ckpt={run_dir}', '--seq_len=512'], [str(config), f'--ckpt={run_dir}']):
        code, msg = cli_error(args + [f'--out_dir={never}'], capsys)
        assert code == 1 and msg.startswith(f"error: seq_len=512 is beyond the context of '{run_dir}' (128 tokens)")
    assert not never.exists()


def test_hf_contexts_are_read_as_the_loaders_report_them(hf_dirs):
    for name, context in (('gpt2', 32), ('qwen3', 32), ('qwen2', 32), ('bloom', None)):  # BLOOM: ALiBi, no limit
        assert measure.model_context('hf', hf_dirs[name]) == context
        assert measure.load_hf_model(hf_dirs[name])['max_len'] == context


def test_a_folder_of_runs_is_measured_side_by_side(token_dataset, tmp_path, capsys):
    """out/ after the paper's configs: no ckpt.pt, one sub-folder per run. Each run is measured, at the smallest
    context of them all (16 here), into out/ itself; files and folders that are not runs are left alone."""
    parent = tmp_path / 'out'
    models = {}
    for name, seed, block in (('midtrain_a_s1', 1, 32), ('midtrain_b_s1', 2, 16)):
        (parent / name).mkdir(parents=True)
        models[name] = make_ckpt(parent / name / 'ckpt.pt', 100, token_dataset, seed, block_size=block)
    (parent / 'notes').mkdir()
    (parent / 'table2.md').write_text('| Method |\n')
    run_cli([f'--ckpt={parent}', '--dry_run=True'])
    printed = json.loads(capsys.readouterr().out)
    assert printed['models'] == list(models) and printed['out_dir'] == str(parent)
    run_cli([f'--ckpt={parent}', '--num_samples=3'])
    printed = capsys.readouterr().out
    assert f"{parent}: 2 runs (midtrain_a_s1, midtrain_b_s1), side by side in {parent}" in printed
    assert ("seq_len: 16 (the smallest context of the 2 models, so that all are measured alike; the default 512 "
            "does not fit midtrain_a_s1, midtrain_b_s1)") in printed
    runs = json.load(open(parent / 'condensation.json'))['runs']
    assert [r['name'] for r in runs] == list(models) and {r['seq_len'] for r in runs} == {16}
    for run in runs:
        means, starts = reference_means(models[run['name']], token_dataset, 3, 16)
        assert run['starts'] == starts
        np.testing.assert_allclose(run['mean_cossim'], means, atol=1e-6)
    assert {'condensation.csv', 'heatmap_midtrain_a_s1.png', 'heatmap_midtrain_b_s1.png', 'trend.png',
            'last_n.png'} <= {p.name for p in parent.iterdir()}
    run_cli([f'--ckpt={parent}', '--num_samples=3'])  # measured before there: kept, a folder of runs resumes
    printed = capsys.readouterr().out
    assert 'measuring' not in printed and printed.count('kept midtrain_') == 2


def test_run_folders_and_one_line_errors_for_folders_without_runs(tmp_path, capsys):
    from checkpoint import run_dirs
    parent = tmp_path / 'runs'
    (parent / 'fsdp' / 'ckpt_sharded').mkdir(parents=True)  # an FSDP run stopped before its end: shards only
    (parent / 'fsdp' / 'ckpt_sharded' / 'train_state.pt').write_bytes(b'')
    (parent / 'snaps').mkdir()
    (parent / 'snaps' / 'ckpt_000010.pt').write_bytes(b'')
    (parent / 'plain').mkdir()
    (parent / 'plain' / 'ckpt.pt').write_bytes(b'')
    (parent / 'empty_dir').mkdir()
    assert run_dirs(str(parent)) == [str(parent / n) for n in ('fsdp', 'plain', 'snaps')]
    assert run_dirs(str(parent / 'plain')) == [str(parent / 'plain')]
    empty, other = tmp_path / 'empty', tmp_path / 'other'
    empty.mkdir()
    (other / 'logs').mkdir(parents=True)
    (other / 'notes.txt').write_text('x')
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli_error([f'--ckpt={empty}'], capsys) == (1, f"error: no checkpoint at '{empty}': the folder is empty")
    assert cli_error([f'--ckpt={other}'], capsys) == (
        1, f"error: no checkpoint at '{other}': it holds no ckpt.pt, and no sub-folder of it is a train.py run "
           f"(holds ckpt.pt or ckpt_sharded/)")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -----------------------------------------------------------------------------
# text input: the authors' sampling recipe, tokenized by the model's own (locally built) tokenizer

def test_text_file_with_local_tokenizer(hf_dirs, tmp_path, no_png):
    from transformers import AutoTokenizer
    rng = np.random.default_rng(0)
    lines = [' '.join(rng.choice(WORDS, 8)) + '\n' for _ in range(40)]  # 8 words per line
    path = tmp_path / 'text.txt'
    path.write_text(''.join(lines))
    out = tmp_path / 'text'
    run_cli([f"--init_from={hf_dirs['gpt2']}", f'--text_file={path}', '--num_samples=4', '--seq_len=20',
             '--min_words=20', '--seed=5', f'--out_dir={out}'])
    run = json.load(open(out / 'condensation.json'))
    # seeds 5..8 each draw a start row in [0, 0.95 * 40); 3 lines (24 words) reach min_words and 20 tokens
    starts = [int(np.random.default_rng(5 + i).integers(0, 38)) for i in range(4)]
    assert run['starts'] == starts and run['windows'] == f'text_file:{path}'
    tok = AutoTokenizer.from_pretrained(hf_dirs['gpt2'])
    windows = [tok(''.join(lines[s:s + 3]))['input_ids'][:20] for s in starts]
    means, _, rho, _ = ref_condensation(hf_hidden(hf_dirs['gpt2'], windows))
    np.testing.assert_allclose(run['mean_cossim'], means, atol=1e-5)
    assert run['spearman'] == pytest.approx(rho, abs=1e-9)


def test_hf_dataset_source_uses_its_text_field(hf_dirs, tmp_path, monkeypatch, no_png):
    import datasets
    rows = [' '.join(['the'] * 30)] * 50
    calls = []

    def fake_load_dataset(*args, split=None):  # the hub is offline in tests: stand in for squad
        calls.append((args, split))
        return datasets.Dataset.from_dict({'context': rows, 'title': ['x'] * 50})
    monkeypatch.setattr(datasets, 'load_dataset', fake_load_dataset)
    run_cli([f"--init_from={hf_dirs['qwen3']}", '--hf_dataset=squad', '--num_samples=2', '--seq_len=8',
             '--min_words=10', f'--out_dir={tmp_path}'])
    assert calls == [(('squad',), 'train')]
    run = json.load(open(tmp_path / 'condensation.json'))
    # every window is 8 copies of one token; Qwen3 adds no position vector (RoPE acts inside attention), so
    # every layer's tokens are identical
    assert run['mean_cossim'] == pytest.approx([1.0] * 5, abs=1e-5)


# -----------------------------------------------------------------------------
# bad input: one line naming the problem, non-zero exit, nothing written

def test_bad_inputs_in_process(hf_dirs, token_dataset, tmp_path, capsys):
    out = tmp_path / 'never'
    common = [f'--out_dir={out}', '--num_samples=2']
    code, msg = cli_error([f"--init_from={hf_dirs['gpt2']}", f'--dataset={token_dataset}', '--seq_len=64'] + common,
                          capsys)
    assert code == 1 and msg.startswith('error: seq_len=64 is beyond the context') and '32 tokens' in msg
    short = tmp_path / 'short.txt'
    short.write_text('the a of to and\n')
    code, msg = cli_error([f"--init_from={hf_dirs['gpt2']}", f'--text_file={short}', '--seq_len=16'] + common, capsys)
    assert code == 1 and 'has 5 tokens, fewer than seq_len=16' in msg
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n\n')
    code, msg = cli_error([f"--init_from={hf_dirs['gpt2']}", f'--text_file={empty}', '--seq_len=16'] + common, capsys)
    assert code == 1 and 'is empty' in msg
    weird = tmp_path / 'weird'
    weird.mkdir()
    (weird / 'config.json').write_text(json.dumps({'model_type': 'no_such_architecture'}))
    code, msg = cli_error([f'--init_from={weird}', f'--dataset={token_dataset}'] + common, capsys)
    assert code == 1 and msg.startswith(f"error: cannot load model '{weird}'")
    code, msg = cli_error([f"--init_from={hf_dirs['gpt2']}", '--hf_dataset=nope'] + common, capsys)
    assert code == 2 and "--hf_dataset='nope': must be one of '', 'wikitext'" in msg
    code, msg = cli_error([f"--init_from={hf_dirs['gpt2']}", f'--dataset={token_dataset}', '--text_file=x'] + common,
                          capsys)
    assert code == 1 and 'at most one of' in msg
    code, msg = cli_error(['--num_sample=3'], capsys)  # a config error: exit 2 via the configurator
    assert code == 2 and 'num_samples' in msg
    model = [f"--init_from={hf_dirs['qwen2']}", f'--dataset={token_dataset}']
    assert cli_error(model + ['--max_memory=cpu:1GB'] + common, capsys) == \
        (1, 'error: --max_memory and --offload_folder place the weights of --device_map=auto; add it')
    assert cli_error(model + ['--device_map=auto', '--max_memory=cpu'] + common, capsys) == \
        (1, "error: --max_memory wants device:size items, e.g. 0:70GiB,1:70GiB,cpu:200GiB; got 'cpu'")
    code, msg = cli_error(model + ['--device_map=auto', '--max_memory=cpu:lots'] + common, capsys)  # accelerate's
    assert code == 1 and msg.startswith(f"error: cannot load model '{hf_dirs['qwen2']}'") and 'lots' in msg
    code, msg = cli_error(model + ['--device_map=everywhere'] + common, capsys)
    assert code == 2 and "--device_map='everywhere': must be one of '', 'auto'" in msg
    assert not out.exists()


def test_dry_run_prints_the_resolved_run_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / 'never'
    run_cli(['--init_from=gpt2, Qwen/Qwen3-0.6B', f'--ckpt={tmp_path / "no_run"}', '--snapshots=True', '--seq_len=64',
             '--dry_run=True', f'--out_dir={out}'])
    printed = json.loads(capsys.readouterr().out)
    assert printed['models'] == [str(tmp_path / 'no_run'), 'gpt2', 'Qwen/Qwen3-0.6B']  # checkpoints first
    assert printed['out_dir'] == str(out) and printed['config']['seq_len'] == 64 and list(printed['config']) == KEYS
    assert not out.exists() and not (tmp_path / 'no_run').exists()


KEYS = ['ckpt', 'snapshots', 'init_from', 'pairs', 'dataset', 'text_file', 'hf_dataset', 'num_samples', 'seq_len',
        'batch_size', 'min_words', 'histograms', 'measures', 'device', 'dtype', 'device_map', 'max_memory',
        'offload_folder', 'trust_remote_code', 'trust_checkpoint', 'seed', 'out_dir', 'compare', 'dry_run']


def test_only_the_defaults_are_keys(tmp_path, capsys):
    """--help lists the defaults block and nothing else; a module constant such as NORM_FLOOR (part of the
    metric's definition) is an unknown key: exit 2, one line, nothing written."""
    run = lambda *args: run_in_process(os.path.join(ROOT, 'measure.py'), *args, cwd=tmp_path)
    p = run('--help')
    assert p.returncode == 0 and [line.split('=')[0].strip() for line in p.stdout.splitlines()[1:]] == \
        [f'--{k}' for k in KEYS]
    assert measure.CONFIG_KEYS == KEYS
    p = run('--NORM_FLOOR=0', f'--out_dir={tmp_path / "o"}')
    assert p.returncode == 2 and p.stderr.strip() == "error: unknown config key 'NORM_FLOOR'"
    for key in ('NUM_BINS', 'HF_DATASETS', 'WORD', 'CONFIG_KEYS'):
        assert cli_error([f'--{key}=0', f'--out_dir={tmp_path / "o"}'], capsys) == \
            (2, f"error: unknown config key '{key}'")
    assert not (tmp_path / 'o').exists()


@pytest.mark.parametrize('args,needle', [
    ([], 'nothing to measure'),
    (['--ckpt={empty}'], 'no checkpoint at'),
])
def test_bad_inputs_exit_1_with_one_line(args, needle, tmp_path):
    """(That a fresh measure.py process prints nothing but the line: test_a_model_with_its_own_code_needs_the_flag.)"""
    (tmp_path / 'empty').mkdir()
    args = [a.format(empty=tmp_path / 'empty') for a in args]
    p = run_in_process(os.path.join(ROOT, 'measure.py'), *args, f'--out_dir={tmp_path / "o"}', cwd=tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith('error: ') and needle in lines[0]
    assert not (tmp_path / 'o').exists()


def test_a_checkpoint_run_imports_only_what_it_needs(token_dataset, tmp_path):
    """Start-up is part of what a small job waits for: measuring a train.py checkpoint on token windows imports
    neither transformers nor scipy nor datasets nor accelerate (matplotlib only to draw the PNGs at the end); and
    importing measure.py, as train.py does, loads no matplotlib. One fresh process: `import measure`, then the
    run (whose top-level imports are measure.py's own)."""
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    make_ckpt(run_dir / 'ckpt.pt', 5, token_dataset, 0)
    code = ("import runpy, sys, measure; print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')); "
            f"sys.argv = ['measure.py', '--ckpt={run_dir}', '--num_samples=2', '--seq_len=16', "
            f"'--out_dir={tmp_path / 'o'}']; runpy.run_path('measure.py', run_name='__main__'); "
            "print(sorted(m for m in ('transformers', 'scipy', 'datasets', 'accelerate', 'matplotlib') "
            "if m in sys.modules))")
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert p.returncode == 0, p.stderr
    printed = p.stdout.strip().splitlines()
    assert printed[0] == '[]'                                          # train.py imports measure.py
    assert printed[-1] == "['matplotlib']"
    assert (tmp_path / 'o' / 'heatmap.png').exists()


def test_measurement_runs_in_exact_float32_even_where_tf32_is_on():
    """train.py allows TF32 for training; the condensation measurement (forward and cosine matmuls) must not use
    it: inside measure_run the flags read False, and the caller's setting is back afterwards."""
    seen = []

    def hidden_fn(idx):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        g = torch.Generator().manual_seed(int(idx.sum()))
        return [torch.randn(idx.shape[0], idx.shape[1], 8, generator=g) for _ in range(3)]

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        windows = np.arange(40, dtype=np.int64).reshape(5, 8)
        measure_run(hidden_fn, windows, list(range(5)), 2, 'cpu')
        assert seen == [(False, False)] * 3
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
