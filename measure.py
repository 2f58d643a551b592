"""
Embedding condensation: how close in angle the tokens of one text are, layer by layer (the paper's Figures
2 to 5, 7, S1 and S2), for train.py checkpoints and any Hugging Face causal LM, of any size.

    python measure.py --ckpt=out-demo                        # windows from the run's own val split
    python measure.py --ckpt=out/                            # every run in out/ (the paper's configs write
                                                             # out/<name>/, sweep.py out/<name>_s<seed>/), side by
                                                             # side, written to out/ itself
    python measure.py --ckpt=out-demo --snapshots=True       # every ckpt_*.pt of a run: over training
    python measure.py config/measure_gpt2.py                 # a model family (Fig 2, S1); config/measure_*.py:
                                                             # every family, the texts of Fig S2, Figs 3, 4, 5
    python measure.py --init_from=Qwen/Qwen2.5-72B --device_map=auto --max_memory=0:70GiB,1:70GiB,cpu:200GiB
    python measure.py config/measure_figure7.py              # Fig 7: baseline and dispersion, a column per eval step
    python measure.py --compare=out-measure/base,out-measure/disp --out_dir=out-compare   # measured runs, side by side

The metric is the authors' (KrishnaswamyLab/LM-Dispersion key_observations/compute_embedding_cossim.py, and
their PyPI package `embedding-condensation`; docs/measure_bench.md compares the two): every hidden state
(embeddings, each block, the last one after the final norm) of a window of T tokens gives a T x T matrix of
token cosine similarities, diagonal kept, clipped to [-1, 1]; the matrices are averaged element-wise over the
windows (position by position). From the averaged matrix of each layer: its mean (`mean_cossim`), a 128-bin
density on [-1, 1] (the heatmap columns), and across layers the Spearman and Kendall correlation of the
means with the layer index 0..N (larger = more condensation) and the mean of the last n layers.

Other geometry measures (--measures=all, or a comma list), from the same forward pass, per hidden state. Each sees
the unit-normalized tokens xhat_i of a window (the points mean_cossim sees: directions, so that the few tokens
with norms far above the rest in many LMs do not own every variance), is computed per window in float64, and is
averaged over the windows, as mean_cossim (whose per-window means average to the same number as the averaged
matrix). Per window, not pooled over windows: the question is how the tokens of one text spread (the dispersion
loss acts within each sequence), and a pool of texts adds the spread between topics; per window also keeps the
cost a running sum. X is the T x d matrix of xhat_i, C the covariance of its rows, lambda C's d eigenvalues.
    mean_cossim_offdiag  mean over the T(T-1) pairs i != j of xhat_i . xhat_j ("average cosine" in most papers)
    effective_rank       Roy & Vetterli (2007): exp(-sum_k p_k log p_k), p_k = s_k / sum s, s the singular values
                         of X (uncentered, so a narrow cone is one direction): 1 .. min(T, d) dimensions
    isoscore             Rudman et al. (2022), IsoScore of the T points in d dims: (PR - 1) / (d - 1), with PR =
                         (sum lambda)^2 / sum lambda^2 (the participation ratio), what their normalize / isotropy
                         defect / rescale steps reduce to; 0 = one direction, 1 = all d; at most (T-2)/(d-1) when
                         T <= d, so compare models at the same seq_len and read it against d
    pca_top<k>           the share of the variance in the top k principal components: sum of the k largest lambda
                         over sum lambda (centered; 'all' gives pca_top1 and pca_top10)
A window with no spread (every token alike) has isoscore 0 and pca_top<k> 1, their limits as a cloud shrinks onto
one direction. Singular values come from the eigenvalues of X X^T or X^T X (the smaller), those under n * eps * the
largest counted as 0 (numpy's matrix_rank tolerance). The cost: docs/study.md.

Models past one device: --device_map=auto hands the weights to accelerate's big-model inference (GPUs, then CPU
memory, then disk, within --max_memory); the hidden states come back to one device, where the metric is
computed in float32, a batch at a time, so memory does not grow with num_samples.

Windows: seq_len tokens, the paper's 512 by default; a model whose context is shorter gets windows of its context
(several models measured together: the smallest of their contexts, so that they stay comparable), and the printout
says so. A seq_len given in a config file or on the command line is used as given, and one that does not fit a
model is an error.

--ckpt takes a run (a train.py out_dir: ckpt.pt, an FSDP run's ckpt_sharded/, snapshots), a .pt file, or a folder
whose sub-folders are runs: each of them is measured, in name order, and out_dir defaults to that folder.

Outputs in out_dir: condensation.json (one run: its dict; several: {"runs": [dict, ...]}; a run holds name,
source, step, modified, n_params, n_layers, num_samples, seq_len, windows ("kind:name"), seed, dtype, device,
seconds, starts, mean_cossim, spearman, kendall, mean_last_n, histograms; with --measures, `measures` and a list
per measure) and condensation.csv, both rewritten after each model; a model measured there before with the same
settings is kept, so an interrupted family run resumes where it stopped. figures.py draws, from these dicts alone,
heatmap.png (or heatmap_<name>.png each), trend.png, for several models last_n.png, and with --pairs pairs.png;
with --measures trend_<measure>.png each, and for snapshots steps.png; --compare: compare(_trend).png.
"""

import csv
import gc
import io
import json
import os
import re
import sys
import time
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
from tqdm import tqdm

import figures
from checkpoint import (SHARDED_STATE, atomic_write, from_pretrained, hf_model_type, hub_revisions, is_sharded,
                        latest_checkpoint, load_causal_lm, load_checkpoint, run_dirs, torch_load)
from configurator import config_keys, configure, die, one_line
from data import dataset_dir, get_tokenizer, load_tokens

# -----------------------------------------------------------------------------
# defaults (override with a config file or --key=value)
ckpt: str | list = ''       # train.py out_dir(s) or .pt file(s), comma-separated for several (Fig 3)
snapshots = False           # with --ckpt=<dir>: every ckpt_*.pt in it plus ckpt.pt, one row per step
init_from: str | list = ''  # HF hub id(s) or HF dir(s), comma-separated; 'id@rev' picks a hub revision, and
                            # 'id@stage1-*' every branch the pattern matches, in training order (Fig 4)
pairs = False               # init_from holds base models, then their distilled models in the same order (Fig 5)
dataset = ''                # windows from data/<name>/val.bin (or a path); default: the checkpoint's own dataset
text_file = ''              # windows from a text file, one row per line, sampled like the authors' recipe
hf_dataset = ''             # wikitext | pubmed_qa | imdb | squad (Fig S2); the default for --init_from: wikitext
num_samples = 100           # windows (the paper's 100 repetitions)
seq_len = 512               # tokens per window (the paper's max_length); left at this default, shortened to the
                            # context of a model that is shorter (see above)
batch_size = 8              # windows per forward pass
min_words = 1024            # text sources: rows are appended until this many words (authors' min_word_count)
histograms = True           # False: means and correlations only, never a T x T matrix (long contexts)
measures: str | list = 'mean_cossim'  # add other geometry measures from the same pass: 'all' or a comma list of
                            # mean_cossim_offdiag, effective_rank, isoscore, pca_top<k> (definitions above)
device = 'auto'             # 'auto' = cuda when available, else cpu
dtype = 'float32'           # float32 | bfloat16 (the model's weights; metrics are always computed in float32)
device_map = ''             # '' = the whole model on `device`; 'auto' = over every GPU, then CPU, then disk
max_memory = ''             # with device_map: the budget per device, e.g. '0:70GiB,1:70GiB,cpu:200GiB'
offload_folder = ''         # with device_map: where the weights go that fit in no memory (disk offload)
trust_remote_code = False   # run a hub model's own modeling code (Qwen1 needs it): read that code first
trust_checkpoint = False    # load ckpt.pt files with full pickle, which can run code: only files you made yourself
seed = 0                    # window offsets; text sources use seeds seed..seed+num_samples-1, as the authors
out_dir = ''                # '' = the folder of runs given as the one --ckpt, else out-measure
compare: str | list = ''    # condensation.json files or out_dirs, comma-separated: side-by-side figure, no measuring
dry_run = False             # print the resolved config, the models and out_dir, then exit: nothing is read or written
# -----------------------------------------------------------------------------
CONFIG_KEYS = config_keys(globals())  # the names above; main() configures them (train.py imports this file)

# fixed by the metric's definition, so never config keys
NUM_BINS = 128       # histogram bins on [-1, 1]
NORM_FLOOR = 1e-3    # the authors' normalize: x / max(||x||, 1e-3), so an all-zero token stays zero


# -----------------------------------------------------------------------------
# the metric

def normalize(x):
    """Unit-normalize each token (last dim), with the authors' floor on the norm."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_FLOOR)


def mean_cossim(hidden):
    """Per hidden state, the mean over all T^2 token pairs (diagonal included) of the cosine matrix, averaged
    over the B windows. hidden: list of [B, T, d] tensors -> list of floats.

    mean_ij(xhat_i . xhat_j) = ||sum_i xhat_i||^2 / T^2, so no T x T matrix is needed (O(T d), not O(T^2 d)).
    The authors' clip to [-1, 1] is left out: after normalize() every norm is <= 1, so |xhat_i . xhat_j| <= 1
    up to float32 rounding (~1e-7), and the mean moves by no more than that (tests check it)."""
    means = []
    for h in hidden:
        x = normalize(h.float())                       # (B, T, d)
        s = x.sum(dim=1, dtype=torch.float64)          # (B, d), float64 so long windows lose nothing
        means.append((s * s).sum(-1).mean() / x.size(1) ** 2)
    return torch.stack(means).tolist()                 # one device sync for all layers


def cosine_matrices(h):
    """[B, T, d] -> [B, T, T] token cosine similarities of each window, clipped to [-1, 1] as the authors do."""
    x = normalize(h.float())
    return torch.bmm(x, x.transpose(1, 2)).clamp_(-1.0, 1.0)


# -----------------------------------------------------------------------------
# the other geometry measures of the anisotropy literature, per window: each takes points x [B, T, d] (B windows of
# T tokens; `geometry` says which points) and returns one float64 value per window, (B,); the module docstring
# has their definitions and why they are per window

def offdiag_cossim(x):
    """The mean cosine over the T(T-1) pairs i != j (what 'average cosine' usually means): the diagonal of the T x T
    matrix holds ||x_i||^2 (1 for unit tokens), so it is (||sum_i x_i||^2 - sum_i ||x_i||^2) / (T (T - 1))."""
    x = x.double()
    T = x.size(1)
    return (x.sum(1).square().sum(-1) - x.square().sum((1, 2))) / (T * (T - 1))


def gram(x, centered=False):
    """x x^T ([B, T, T]) or x^T x ([B, d, d]), whichever is smaller, in float64: both have the same non-zero
    eigenvalues, the squared singular values of x. centered: of x minus its mean token (the covariance times T-1)."""
    x = x.double()
    if centered:
        x = x - x.mean(1, keepdim=True)
    return x @ x.transpose(1, 2) if x.size(1) <= x.size(2) else x.transpose(1, 2) @ x


def eigenvalues(g):
    """Eigenvalues of symmetric PSD matrices [B, n, n], descending; those below n * eps * the largest are rounding
    (numpy.linalg.matrix_rank's tolerance, here on the squared singular values) and set to 0."""
    lam = torch.linalg.eigvalsh(g).flip(-1)
    floor = lam[:, :1] * lam.size(-1) * torch.finfo(lam.dtype).eps
    return torch.where(lam > floor, lam, torch.zeros_like(lam))


def effective_rank(x):
    """Roy & Vetterli (2007): exp(H(p)), H the Shannon entropy (nats) of p_k = s_k / sum_k s_k, s the singular values
    of the (uncentered) T x d matrix; 0 log 0 = 0. Between 1 (one direction) and min(T, d); 0 for an all-zero x."""
    s = eigenvalues(gram(x)).sqrt()
    p = s / s.sum(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    return torch.exp(-torch.special.xlogy(p, p).sum(-1)) * (s[:, 0] > 0)


def isoscore(x):
    """IsoScore (Rudman et al. 2022) of the cloud of T points in d dimensions: with lambda the eigenvalues of its
    covariance (d of them, zeros included), the paper's steps (normalize lambda to norm sqrt(d), isotropy defect to
    the all-ones vector, rescale) reduce to (PR - 1) / (d - 1), PR = (sum lambda)^2 / sum lambda^2 the participation
    ratio, = trace(C)^2 / ||C||_F^2: no eigendecomposition needed. 1 = isotropic in all d dimensions, 0 = one
    direction; with T <= d the covariance has rank <= T - 1, so the score is at most (T - 2) / (d - 1). A cloud with
    no spread at all (every token the same) scores 0, the limit of a cloud shrinking onto one direction."""
    g = gram(x, centered=True)                          # same trace and Frobenius norm as the covariance, x (T-1)
    trace, frob2 = g.diagonal(dim1=1, dim2=2).sum(-1), g.square().sum((1, 2))
    ratio = trace.square() / frob2.clamp_min(torch.finfo(g.dtype).tiny)
    d = x.size(-1)
    return torch.where(frob2 > 0, (ratio - 1) / (d - 1), torch.zeros_like(ratio))


def pca_variance_share(x, k, lam=None):
    """The share of the cloud's variance in its top k principal components: the k largest eigenvalues of the
    covariance over their sum. 1 for a cloud with no spread (the limit of one direction). lam: those eigenvalues,
    when already computed (several k share one decomposition)."""
    lam = eigenvalues(gram(x, centered=True)) if lam is None else lam
    total = lam.sum(-1)
    return torch.where(total > 0, lam[:, :k].sum(-1) / total.clamp_min(torch.finfo(lam.dtype).tiny),
                       torch.ones_like(total))


def window_mean_cossim(x):
    """mean_cossim's per-window value (diagonal included): ||sum_i x_i||^2 / T^2."""
    return x.double().sum(1).square().sum(-1) / x.size(1) ** 2


MEASURES = {'mean_cossim': window_mean_cossim, 'mean_cossim_offdiag': offdiag_cossim,
            'effective_rank': effective_rank, 'isoscore': isoscore}  # and pca_top<k>, any k >= 1
ALL_MEASURES = ('mean_cossim', 'mean_cossim_offdiag', 'effective_rank', 'isoscore', 'pca_top1', 'pca_top10')


def parse_measures(value):
    """'all', a comma-separated string or a list of names -> the list of measure names, mean_cossim always first
    (every output has it). Unknown names raise ValueError."""
    names = [str(v).strip() for v in (value if isinstance(value, (list, tuple)) else str(value).split(','))]
    names = [n for n in names if n]
    if 'all' in names:
        names = list(ALL_MEASURES) + [n for n in names if n not in ALL_MEASURES and n != 'all']
    bad = [n for n in names if n not in MEASURES and not re.fullmatch(r'pca_top[1-9]\d*', n)]
    if bad:
        raise ValueError(f"unknown measure {', '.join(map(repr, bad))} (one of: all, {', '.join(MEASURES)}, "
                         f"pca_top<k> for k >= 1)")
    return ['mean_cossim'] + [n for n in dict.fromkeys(names) if n != 'mean_cossim']


def geometry(hidden, names):
    """The per-window measures `names` of every hidden state: list of [B, T, d] tensors -> {name: float64 tensor
    [n_states, B]}. Every measure sees the unit-normalized tokens (normalize(), as mean_cossim)."""
    out = {n: [] for n in names}
    for h in hidden:
        x = normalize(h.float())
        lam = None
        for n in names:
            if n.startswith('pca_top'):  # one eigendecomposition for every k
                lam = eigenvalues(gram(x, centered=True)) if lam is None else lam
                out[n].append(pca_variance_share(x, int(n[len('pca_top'):]), lam))
            else:
                out[n].append(MEASURES[n](x))
    return {n: torch.stack(v) for n, v in out.items()}


def rank_correlations(means):
    """Spearman rho and Kendall tau of the per-layer means against the layer index 0..N, as scipy.stats'
    spearmanr / kendalltau compute them by default (average ranks for ties; tau-b), in numpy because importing
    scipy.stats costs more than measuring a small model. None when undefined (< 2 layers, constant means)."""
    y = np.asarray(means, dtype=np.float64)
    n = len(y)
    if n < 2 or np.all(y == y[0]):
        return None, None
    ranks = np.empty(n)
    ranks[np.argsort(y, kind='stable')] = np.arange(n)
    for value in np.unique(y):                         # tied means share their average rank
        ranks[y == value] = ranks[y == value].mean()
    rho = np.corrcoef(np.arange(n), ranks)[0, 1]
    i, j = np.triu_indices(n, 1)                       # all pairs i < j; the index itself is never tied
    concordance = np.sign(y[j] - y[i])                 # +1 concordant, -1 discordant, 0 tied in y
    pairs = len(i)
    tau = concordance.sum() / np.sqrt(pairs * (pairs - np.sum(concordance == 0)))
    return float(rho), float(tau)


def layer_trend(means):
    """Per-layer means -> what describes them across depth: mean_cossim, spearman, kendall and mean_last_n, the
    mean of the last n layers for n = 1 .. N+1 (the paper plots n = 1..5 and n = N//2 + 1)."""
    rho, tau = rank_correlations(means)
    return dict(mean_cossim=[float(m) for m in means], spearman=rho, kendall=tau,
                mean_last_n=[float(np.mean(means[-n:])) for n in range(1, len(means) + 1)])


@contextmanager
def exact_float32():
    """Full float32 matmuls on CUDA inside, whatever the caller allowed: train.py turns TF32 on for speed, but TF32
    keeps 10 mantissa bits (~1e-3 relative), and this measurement is compared with the authors' package (which
    runs PyTorch's default, exact float32) digit for digit. The model's forward is measured in it too."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.inference_mode()
@exact_float32()
def measure_run(hidden_fn, windows, starts, batch_size, device, /, keep_matrices=True, measures=None, **info):
    """The paper's measurement on token windows [N, T] -> the run record condensation.json holds.

    Per hidden state it keeps a running float64 sum of the windows' clipped T x T cosine matrices (27 MB for 13
    states x 512 tokens, whatever N), averaged element-wise at the end as the paper does; keep_matrices=False
    keeps only the sum of the window means (no histograms; for long contexts). measures: names beyond mean_cossim
    (parse_measures), measured from the same forward pass, per window, and averaged over the windows (a running
    sum of one number per window and hidden state); the record then adds `measures` (their names) and one list per
    name. info: name, source, step, windows (where they came from), seed, dtype; the arguments before it are
    positional-only, so that info's `windows` is not taken for the token array."""
    if len(windows) == 0:
        raise ValueError("no windows to measure")
    extra = [n for n in parse_measures(measures or 'mean_cossim') if n != 'mean_cossim']
    t0 = time.perf_counter()
    sums, extra_sums = None, {n: 0.0 for n in extra}
    for i in tqdm(range(0, len(windows), batch_size), desc='batches', file=sys.stderr, leave=False):
        hidden = hidden_fn(torch.from_numpy(windows[i:i + batch_size]).to(device))
        if keep_matrices:
            new = [cosine_matrices(h).sum(0, dtype=torch.float64) for h in hidden]  # (T, T) each
        else:
            new = [torch.tensor(m * len(h), dtype=torch.float64) for m, h in zip(mean_cossim(hidden), hidden)]
        sums = new if sums is None else [s + n for s, n in zip(sums, new)]
        if extra:
            for n, values in geometry(hidden, extra).items():  # [n_states, B] -> the sum over this batch's windows
                extra_sums[n] = extra_sums[n] + values.sum(1)
    averaged = [(s / len(windows)).cpu().numpy() for s in sums]  # per layer: S_bar, or the mean of the means
    edges = np.linspace(-1.0, 1.0, NUM_BINS + 1)
    histograms = [np.histogram(a, bins=edges, density=True)[0].tolist() for a in averaged] if keep_matrices else None
    more = dict(measures=['mean_cossim'] + extra,
                **{n: (s / len(windows)).tolist() for n, s in extra_sums.items()}) if extra else {}
    return dict(info, n_layers=len(sums) - 1, num_samples=len(windows), seq_len=windows.shape[1], device=device,
                seconds=round(time.perf_counter() - t0, 3), starts=starts,
                **layer_trend([a.mean() for a in averaged]), histograms=histograms, **more)


# -----------------------------------------------------------------------------
# windows: token ids [num_samples, seq_len] from a token file or from text, and where each one starts

def token_windows(tokens, num_samples, seq_len, seed):
    """Windows at seeded random offsets of a flat token array -> (int64 array [N, T], offsets)."""
    if len(tokens) < seq_len:
        raise ValueError(f"the tokens hold {len(tokens)} tokens, fewer than seq_len={seq_len}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(tokens) - seq_len + 1, size=num_samples)
    windows = np.stack([np.asarray(tokens[s:s + seq_len], dtype=np.int64) for s in starts])
    return windows, [int(s) for s in starts]


WORD = re.compile(r"\w+|[^\w\s]")  # stands in for nltk.word_tokenize (needs a download): words and punctuation

# the text sources of Figure S2: load_dataset arguments and the text field (the authors' utils/text_data.py)
HF_DATASETS = {
    'wikitext': (('wikitext', 'wikitext-103-v1'), 'text'),
    'pubmed_qa': (('pubmed_qa', 'pqa_labeled'), 'long_answer'),
    'imdb': (('imdb',), 'text'),
    'squad': (('squad',), 'context'),
}


def text_window(get_row, n_rows, seed, encode, seq_len, min_words):
    """The authors' get_random_long_text: a start row drawn from default_rng(seed) in [0, 0.95 * n_rows), then
    consecutive rows appended until the text has min_words words; tokenized and cut to seq_len. A text still
    short of seq_len tokens keeps taking rows (wrapping around once), since position-aligned averaging needs
    windows of one length. -> (token ids, start row)."""
    start = int(np.random.default_rng(seed).integers(0, max(1, int(0.95 * n_rows))))
    text, words = "", 0
    for i in range(start, start + n_rows):
        row = get_row(i % n_rows)
        text += row
        words += len(WORD.findall(row))
        if words >= min_words:
            ids = encode(text)
            if len(ids) >= seq_len:
                return ids[:seq_len], start
    ids = encode(text) if text.strip() else []
    if len(ids) < seq_len:
        raise ValueError(f"the text has {len(ids)} tokens, fewer than seq_len={seq_len}")
    return ids[:seq_len], start


@lru_cache(maxsize=None)
def text_rows(source):
    """('text_file', path) or ('hf_dataset', name) -> (get_row(i), n_rows)."""
    kind, name = source
    if kind == 'text_file':
        if not os.path.isfile(name):
            raise FileNotFoundError(f"text file '{name}' not found")
        with open(name, encoding='utf-8') as f:
            rows = f.read().splitlines(keepends=True)
        if not any(r.strip() for r in rows):
            raise ValueError(f"text file '{name}' is empty")
        return rows.__getitem__, len(rows)
    if name not in HF_DATASETS:
        raise ValueError(f"unknown hf_dataset '{name}' (one of: {', '.join(HF_DATASETS)})")
    from datasets import load_dataset
    args, field = HF_DATASETS[name]
    ds = load_dataset(*args, split='train')
    return (lambda i: ds[i][field]), len(ds)


def make_windows(source, encode, vocab_size, num_samples, seq_len, seed, min_words=1024):
    """source: ('dataset', name) | ('text_file', path) | ('hf_dataset', name) -> (windows [N, T] int64, starts):
    the window offsets in val.bin, or the start row of each text."""
    kind, name = source
    if kind == 'dataset':
        windows, starts = token_windows(load_tokens(dataset_dir(name), 'val'), num_samples, seq_len, seed)
        if vocab_size is not None and windows.max() >= vocab_size:
            raise ValueError(f"dataset '{name}' has token id {windows.max()}, beyond the model's vocab ({vocab_size})")
        return windows, starts
    get_row, n_rows = text_rows(source)
    pairs = [text_window(get_row, n_rows, seed + i, encode, seq_len, min_words) for i in range(num_samples)]
    return np.array([p[0] for p in pairs], dtype=np.int64), [p[1] for p in pairs]


# -----------------------------------------------------------------------------
# models: our checkpoints, our GPT/Qwen3 for those hub models, transformers for the rest.
# Each loader returns dict(model, hidden_states, step, n_params, max_len, vocab_size, encode, default_source),
# where hidden_states(idx [B, T]) -> the n_layer + 1 hidden states and max_len is None when there is no limit.
# n_params counts every parameter, a tied LM head once.

def load_train_checkpoint(path, trust_checkpoint=False):
    """A train.py out_dir (its ckpt.pt) or .pt file."""
    m, ck = load_checkpoint(path, device='cpu', trust_checkpoint=trust_checkpoint)
    tokenizer = lru_cache(maxsize=1)(lambda: get_tokenizer(ck['data_meta']['tokenizer']))  # only text needs it
    return dict(model=m, hidden_states=m.hidden_states, step=int(ck['step']), n_params=m.num_params(),
                max_len=m.max_seq_len, vocab_size=m.config.vocab_size, encode=lambda text: tokenizer().encode(text),
                default_source=('dataset', (ck.get('config') or {}).get('dataset', '')))


def load_hf_model(name, torch_dtype=torch.float32, trust_remote_code=False, **placement):
    """A hub id ('id@revision' for a hub revision) or HF dir. gpt2 / qwen3 on one device go through our model.py
    (the code our checkpoints run); anything else through AutoModelForCausalLM, loaded straight in torch_dtype (a
    32B model in bf16 needs 64 GB, not 128) and placed by accelerate when placement holds device_map, max_memory,
    offload_folder. Its base model (no LM head, whose logits would be B x T x vocab floats) gives the states."""
    name, _, revision = name.partition('@') if not os.path.exists(name) else (name, '', '')
    revision = revision or None
    if hf_model_type(name, revision) in ('gpt2', 'qwen3') and revision is None and not placement:
        m = from_pretrained(name)
        hidden_states, max_len, vocab_size, n_params = m.hidden_states, m.max_seq_len, m.config.vocab_size, \
            m.num_params()
    else:
        m = load_causal_lm(name, revision, torch_dtype, trust_remote_code, **placement)
        base, cfg, head = m.base_model, m.config, m.get_output_embeddings()
        hidden_states = lambda idx: [h.to(idx.device) for h in  # back on one device, wherever accelerate put them
                                     base(input_ids=idx, output_hidden_states=True, use_cache=False).hidden_states]
        # ALiBi models (Bloom) have no position table, hence no limit to check
        max_len = getattr(cfg, 'max_position_embeddings', None) or getattr(cfg, 'n_positions', None)
        vocab_size = cfg.vocab_size
        untied = head is not None and not getattr(cfg, 'tie_word_embeddings', False)  # disk offload unties on meta
        n_params = sum(p.numel() for p in base.parameters()) + (head.weight.numel() if untied else 0)

    @lru_cache(maxsize=1)
    def tokenizer():  # loaded on first use: only text sources need it
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    # the authors call tokenizer(text) with its defaults, so special tokens (e.g. a BOS) are kept
    return dict(model=m.eval(), hidden_states=hidden_states, step=None, n_params=n_params, max_len=max_len,
                vocab_size=vocab_size, encode=lambda text: tokenizer()(text)['input_ids'],
                default_source=('hf_dataset', 'wikitext'))


# -----------------------------------------------------------------------------
# outputs, each written through atomic_write (a crash leaves no half-written file); the figures: figures.py

def csv_row(run):
    """One CSV row per run; each measure beyond mean_cossim adds <name>_first, _last_1, _last_half, _all (the first
    hidden state, the last, the mean of the last n//2 + 1 as mean_last_half, the mean of all n)."""
    m = run['mean_cossim']
    row = dict(name=run['name'], step=run['step'], n_params=run.get('n_params'), n_layers=run['n_layers'],
               num_samples=run['num_samples'], seq_len=run['seq_len'], spearman=run['spearman'],
               kendall=run['kendall'], mean_first=m[0], mean_last_1=m[-1],
               mean_last_half=run['mean_last_n'][len(m) // 2], mean_all=run['mean_last_n'][-1])
    for name in run.get('measures', ['mean_cossim'])[1:]:
        v = run[name]
        row.update({f'{name}_first': v[0], f'{name}_last_1': v[-1],
                    f'{name}_last_half': float(np.mean(v[-(len(v) // 2 + 1):])), f'{name}_all': float(np.mean(v))})
    return row


def write_outputs(runs, out_dir, draw=True, pairs=False):
    """condensation.json and condensation.csv (after every model: an interrupted run keeps what it measured), then
    with draw the figures: figures.write_figures."""
    os.makedirs(out_dir, exist_ok=True)
    atomic_write(os.path.join(out_dir, 'condensation.json'),
                 json.dumps(runs[0] if len(runs) == 1 else {'runs': runs}, indent=1))
    rows = [csv_row(r) for r in runs]
    table = io.StringIO()  # runs measured with different measures: every column of any row, blank where absent
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), restval='')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(os.path.join(out_dir, 'condensation.csv'), table.getvalue())
    if draw:
        figures.write_figures(runs, out_dir, pairs=pairs)


def settings(run):
    """What makes two runs one measurement: the model (its step; for a local one, when its weights last changed),
    the windows, the precision, the histograms, the measures (None: mean_cossim only)."""
    keys = ('source', 'step', 'modified', 'windows', 'num_samples', 'seq_len', 'seed', 'dtype')
    return tuple(run.get(k) for k in keys) + (run.get('histograms') is not None, tuple(run.get('measures') or ()))


def modified(path):
    """The newest modification time of a local model's weights (a .pt file, or the .pt, .safetensors and .bin
    files of a folder); None for a hub id, whose revision names its weights."""
    files = [os.path.join(path, f) for f in os.listdir(path)] if os.path.isdir(path) else [path]
    times = [os.path.getmtime(f) for f in files if f.endswith(('.pt', '.safetensors', '.bin')) and os.path.isfile(f)]
    return max(times, default=None)


# -----------------------------------------------------------------------------
# CLI

def as_list(value):
    items = value if isinstance(value, (list, tuple)) else str(value).split(',')
    return [str(v).strip() for v in items if str(v).strip()]


def snapshot_paths(out):
    """ckpt_*.pt in step order, then ckpt.pt (skipped later if its step was already measured)."""
    if not os.path.isdir(out):
        raise ValueError(f"--snapshots needs a train.py out_dir, got '{out}'")
    found = [(int(m.group(1)), m.group(0)) for f in os.listdir(out) if (m := re.fullmatch(r'ckpt_(\d+)\.pt', f))]
    paths = [os.path.join(out, f) for _, f in sorted(found)]  # by step: past 999999 names stop sorting as text
    if os.path.isfile(os.path.join(out, 'ckpt.pt')):
        paths.append(os.path.join(out, 'ckpt.pt'))
    if not paths:
        raise FileNotFoundError(f"no ckpt.pt or ckpt_*.pt in '{out}'")
    return paths


def model_context(kind, path, trust_checkpoint=False, trust_remote_code=False):
    """The longest window a model takes (None: no limit), the max_len its loader reports, from its description
    alone, so that every model's context is known before any is loaded: a checkpoint's model_args (its tensors stay
    on disk, mmap), an HF model's config (transformers' AutoConfig, as the model is loaded with)."""
    if kind == 'ckpt':
        if os.path.isdir(path) and not is_sharded(path):
            path = latest_checkpoint(path, training=False)  # what load_checkpoint reads
        if is_sharded(path):
            path = os.path.join(path, SHARDED_STATE)
        elif os.path.isdir(path):
            path = os.path.join(path, 'ckpt.pt')
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no checkpoint at {path}")
        ck = torch_load(path, trust=trust_checkpoint, mmap=True)
        if not isinstance(ck, dict) or not isinstance(ck.get('model_args'), dict):
            raise ValueError(f"{path}: not a train.py checkpoint (no 'model_args')")
        field = {'gpt': 'block_size', 'qwen3': 'max_position_embeddings'}.get(ck.get('arch'))  # model.py's max_seq_len
        if field is None:
            raise ValueError(f"{path}: unknown arch {ck.get('arch')!r}")
        return ck['model_args'].get(field)
    from transformers import AutoConfig
    name, _, revision = path.partition('@') if not os.path.exists(path) else (path, '', '')
    cfg = AutoConfig.from_pretrained(name, revision=revision or None, trust_remote_code=trust_remote_code)
    # as load_hf_model: ALiBi models (Bloom) have no position table, hence no limit
    return getattr(cfg, 'max_position_embeddings', None) or getattr(cfg, 'n_positions', None)


def window_length(contexts, default):
    """The default seq_len made to fit: (the seq_len to measure with, the sentence that says why, or None when the
    default fits). contexts: {model name: its context or None}. Models measured together share one length, the
    smallest of their contexts, so that their numbers stay comparable (the diagonal alone adds 1/T to a mean)."""
    limits = {n: c for n, c in contexts.items() if c is not None}
    if not limits or min(limits.values()) >= default:
        return default, None
    fit = min(limits.values())
    short = [n for n, c in limits.items() if c < default]
    if len(contexts) == 1:
        return fit, f"seq_len: {fit} (the model's context; the default {default} does not fit)"
    return fit, (f"seq_len: {fit} (the smallest context of the {len(contexts)} models, so that all are measured "
                 f"alike; the default {default} does not fit {', '.join(short)})")


def main():
    global out_dir, seq_len  # their defaults depend on the models: resolved below, once those are known
    explicit = set()  # the keys a config file or the command line set
    config = configure(globals(), keys=CONFIG_KEYS, given=explicit)
    if as_list(compare):  # no measuring: figures of runs measured earlier, side by side
        out_dir = out_dir or 'out-measure'
        try:
            runs = figures.compare(as_list(compare), out_dir)
        except (OSError, ValueError, KeyError) as e:  # a missing or malformed condensation.json
            die(one_line(e))
        print(f"wrote {os.path.join(out_dir, 'compare.png')} and compare_trend.png ({len(runs)} runs)")
        return
    sources = [(k, v) for k, v in (('dataset', dataset), ('text_file', text_file), ('hf_dataset', hf_dataset)) if v]
    if len(sources) > 1:
        die("give at most one of --dataset, --text_file, --hf_dataset")
    if hf_dataset and hf_dataset not in HF_DATASETS:
        die(f"unknown hf_dataset '{hf_dataset}' (one of: {', '.join(HF_DATASETS)})")
    if num_samples < 1 or seq_len < 2 or batch_size < 1:
        die("num_samples and batch_size must be >= 1 and seq_len >= 2")
    if dtype not in ('float32', 'bfloat16'):
        die(f"dtype must be float32 or bfloat16, got '{dtype}'")
    try:
        measured = parse_measures(measures)
    except ValueError as e:
        die(one_line(e), 2)
    if device_map not in ('', 'auto', 'balanced', 'balanced_low_0', 'sequential'):
        die(f"device_map must be '' or auto (or balanced, balanced_low_0, sequential), got '{device_map}'")
    budget = dict(item.partition(':')[::2] for item in as_list(max_memory))  # accelerate checks the sizes
    if '' in budget.values():
        die(f"--max_memory wants device:size items, e.g. 0:70GiB,1:70GiB,cpu:200GiB; got '{max_memory}'")
    if (budget or offload_folder) and not device_map:
        die("--max_memory and --offload_folder place the weights of --device_map=auto; add it")
    placement = dict(device_map=device_map, max_memory={int(d) if d.isdigit() else d: size
                                                        for d, size in budget.items()} or None,
                     offload_folder=offload_folder or None) if device_map else {}

    # what to measure: (kind, path or id, display name); local paths are named by their last component
    # (out-gpt2-disp, ckpt_000100.pt), unless two would share a name. A folder of runs stands for its runs. A dry
    # run expands only those (a folder listing: no hub, no checkpoint read).
    try:
        folders = {c: run_dirs(c) for c in as_list(ckpt)}
        given = [('ckpt', r) for runs in folders.values() for r in runs] + \
                [('hf', n) for name in as_list(init_from) for n in ([name] if dry_run else hub_revisions(name))]
        short = lambda p: os.path.basename(os.path.normpath(p)) if os.path.exists(p) else p
        names = [short(p) for _, p in given]
        subjects = []
        for (kind, path), name in zip(given, names if len(set(names)) == len(names) else [p for _, p in given]):
            many = kind == 'ckpt' and snapshots and not dry_run
            subjects += [(kind, p, name) for p in (snapshot_paths(path) if many else [path])]
    except (OSError, ValueError) as e:
        die(one_line(e))
    if not subjects:
        die("nothing to measure: give --ckpt, --init_from or --compare")
    if pairs and (len(subjects) % 2 or snapshots):
        die(f"--pairs=True takes base models, then as many distilled ones, in that order; got {len(subjects)}")
    parents = [c for c, runs in folders.items() if runs != [c]]
    out_dir = out_dir or (parents[0] if len(folders) == 1 and parents else 'out-measure')
    if dry_run:
        print(json.dumps(dict(config=config, models=[name for _, _, name in subjects], out_dir=out_dir), indent=1))
        return
    for c in parents:
        print(f"{c}: {len(folders[c])} runs ({', '.join(os.path.basename(r) for r in folders[c])}), "
              f"side by side in {out_dir}")
    if 'seq_len' not in explicit:  # the default: windows that fit every model, and the same for all of them
        contexts = {}
        for kind, path, name in subjects:
            try:
                contexts[name] = contexts.get(name) or model_context(kind, path, trust_checkpoint, trust_remote_code)
            except Exception as e:  # as the loop below would say it
                die(f"cannot load {'checkpoint' if kind == 'ckpt' else 'model'} '{path}': {one_line(e)}")
        seq_len, why = window_length(contexts, seq_len)
        if why:
            print(why)
    dev = ('cuda' if torch.cuda.is_available() else 'cpu') if device == 'auto' else device
    ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[dtype]
    try:  # what this out_dir measured before, by settings
        before = figures.load_runs(out_dir) if os.path.isfile(os.path.join(out_dir, 'condensation.json')) else []
        before = {settings(r): r for r in before}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        die(f"cannot read what {out_dir} measured before: {one_line(e)} (move its condensation.json away)")

    runs = []
    for kind, path, name in subjects:
        try:  # a train.py checkpoint is loaded to learn its step; a hub model only when it is measured
            loaded = load_train_checkpoint(path, trust_checkpoint) if kind == 'ckpt' else None
            source = sources[0] if sources else loaded['default_source'] if loaded else ('hf_dataset', 'wikitext')
            asked = dict(source=path, step=loaded and loaded['step'], modified=modified(path), seed=seed, dtype=dtype,
                         windows=f"{source[0]}:{source[1]}", num_samples=num_samples, seq_len=seq_len,
                         histograms=[] if histograms else None, measures=measured if len(measured) > 1 else None)
            if snapshots and kind == 'ckpt':
                name = f"{name} step {loaded['step']}"
                if any(r['name'] == name for r in runs):
                    continue  # ckpt.pt is the same step as the last snapshot
            if settings(asked) in before:
                runs.append(before[settings(asked)])
                print(f"kept {name}: measured before in {out_dir}")
                continue
            loaded = loaded or load_hf_model(path, ptdtype, trust_remote_code, **placement)
        except Exception as e:  # missing files, unknown architectures, bad checkpoints: one line each
            die(f"cannot load {'checkpoint' if kind == 'ckpt' else 'model'} '{path}': {one_line(e)}")
        if loaded['max_len'] is not None and seq_len > loaded['max_len']:
            die(f"seq_len={seq_len} is beyond the context of '{path}' ({loaded['max_len']} tokens); give a seq_len "
                f"that fits, or none: the default is shortened to fit")
        if not source[1]:
            die(f"no windows for '{path}': give --dataset, --text_file or --hf_dataset")
        try:
            windows, starts = make_windows(source, loaded['encode'], loaded['vocab_size'], num_samples, seq_len,
                                           seed, min_words)
        except Exception as e:  # missing data, offline hub, too-short text
            die(f"cannot make windows from {source[0]} '{source[1]}': {one_line(e)}")
        placed = getattr(loaded['model'], 'hf_device_map', None)  # set when accelerate placed the weights
        if placed is None:
            loaded['model'].to(device=dev, dtype=ptdtype)
        where = dev if placed is None else f"{dev}, weights on {'+'.join(sorted(set(map(str, placed.values()))))}"
        print(f"measuring {name}: {len(windows)} windows x {seq_len} tokens from {source[0]} '{source[1]}' on {where}")
        runs.append(measure_run(loaded['hidden_states'], windows, starts, batch_size, dev, keep_matrices=histograms,
                                measures=measured, name=name, source=path, step=loaded['step'],
                                modified=asked['modified'], n_params=loaded['n_params'], windows=asked['windows'],
                                seed=seed, dtype=dtype))
        runs[-1]['device'] = where
        write_outputs(runs, out_dir, draw=False)
        del loaded  # free the model before the next one, whose device_map accelerate sizes by the free memory
        gc.collect()
        torch.cuda.empty_cache()
        print(f"  {runs[-1]['seconds']:.1f}s | spearman {runs[-1]['spearman']} | kendall {runs[-1]['kendall']} | "
              f"mean_last_1 {runs[-1]['mean_cossim'][-1]:.4f}")
    write_outputs(runs, out_dir, pairs=pairs)
    print(f"wrote {os.path.join(out_dir, 'condensation.json')} ({len(runs)} run{'s' if len(runs) > 1 else ''})")


if __name__ == '__main__':
    main()
