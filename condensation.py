"""
The condensation measures, defined once: how close in angle the tokens of one text are, per hidden state (the
paper's per-layer mean cosine, its histograms and its trend across layers), and the other geometry measures of the
anisotropy literature. measure.py measures checkpoints and Hugging Face models with them, train.py's eval probe and
end-of-run measurement use them, eval.py its exact_float32; this file imports nothing of ours.

    from condensation import measure_run, mean_cossim, geometry, parse_measures

The metric is the authors' (KrishnaswamyLab/LM-Dispersion key_observations/compute_embedding_cossim.py, and
their PyPI package `embedding-condensation`; docs/measure_bench.md compares the two): every hidden state
(embeddings, each block, the last one after the final norm) of a window of T tokens gives a T x T matrix of
token cosine similarities, diagonal kept, clipped to [-1, 1]; the matrices are averaged element-wise over the
windows (position by position). From the averaged matrix of each layer: its mean (`mean_cossim`), a 128-bin
density on [-1, 1] (the heatmap columns), and across layers the Spearman and Kendall correlation of the
means with the layer index 0..N (larger = more condensation) and the mean of the last n layers.

Other geometry measures (measure.py --measures=all or a comma list; train.py's eval_measures), from the same forward
pass, per hidden state. Each sees the unit-normalized tokens xhat_i of a window (the points mean_cossim sees:
directions, so that the few tokens with norms far above the rest in many LMs do not own every variance), is computed
per window in float64, and is averaged over the windows, as mean_cossim (whose per-window means average to the same
number as the averaged matrix). Per window, not pooled over windows: the question is how the tokens of one text
spread (the dispersion loss acts within each sequence), and a pool of texts adds the spread between topics; per
window also keeps the cost a running sum. X is the T x d matrix of xhat_i, C the covariance of its rows, lambda C's
d eigenvalues.
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
"""

import re
import sys
import time
from contextlib import contextmanager

import numpy as np
import torch
from tqdm import tqdm

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
