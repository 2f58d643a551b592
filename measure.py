"""
Embedding condensation: how close in angle the tokens of one text are, layer by layer (the paper's Figures
2, 3, 4, 5, 7, S1 and S2). Works on train.py checkpoints and on any Hugging Face model.

    python measure.py --ckpt=out-demo                                   # windows from the run's own val split
    python measure.py --ckpt=out-demo --snapshots=True                  # every ckpt_*.pt: over training (Fig 4)
    python measure.py --init_from=gpt2,gpt2-medium,gpt2-large,gpt2-xl --out_dir=out-measure/gpt2  # Fig 2 / S1
    python measure.py --init_from=Qwen/Qwen3-0.6B --hf_dataset=imdb     # another text source (Fig S2)
    python measure.py --compare=out-measure/base,out-measure/disp --out_dir=out-measure/fig7      # Fig 7

The metric is the authors' (KrishnaswamyLab/LM-Dispersion key_observations/compute_embedding_cossim.py, and
their PyPI package `embedding-condensation`; docs/measure_bench.md compares the two): every hidden state
(embeddings, each block, the last one after the final norm) of a window of T tokens gives a T x T matrix of
token cosine similarities, diagonal kept, clipped to [-1, 1]; the matrices are averaged element-wise over the
windows (position by position). From the averaged matrix of each layer: its mean (`mean_cossim`), a 128-bin
density on [-1, 1] (the heatmap columns), and across layers the Spearman and Kendall correlation of the
means with the layer index 0..N (larger = more condensation) and the mean of the last n layers.

Outputs in out_dir: condensation.json (one run: the run's dict; several: {"runs": [dict, ...]}; a run holds
name, source, step, n_layers, num_samples, seq_len, windows, seed, dtype, device, seconds, starts, mean_cossim,
spearman, kendall, mean_last_n, histograms), condensation.csv (one row per model or step), heatmap.png (one
model) or heatmap_<name>.png (several), and trend.png. --compare writes compare.png and compare_trend.png.
"""

import csv
import glob
import json
import os
import re
import sys
import tempfile
import time
from functools import lru_cache

import numpy as np
import torch

# -----------------------------------------------------------------------------
# defaults (override with a config file or --key=value)
ckpt = ''            # train.py out_dir(s) or .pt file(s), comma-separated for several (Fig 3, 5)
snapshots = False    # with --ckpt=<dir>: measure every ckpt_*.pt in it plus ckpt.pt, one row per step (Fig 4)
init_from = ''       # HF hub id(s) or HF dir(s), comma-separated; 'id@revision' picks a hub revision
dataset = ''         # windows from data/<name>/val.bin (or a path); default: the checkpoint's own dataset
text_file = ''       # windows from a text file, one row per line, sampled like the authors' recipe
hf_dataset = ''      # wikitext | pubmed_qa | imdb | squad (Fig S2); the default for --init_from is wikitext
num_samples = 100    # windows (the paper's 100 repetitions)
seq_len = 512        # tokens per window (the paper's max_length)
batch_size = 8       # windows per forward pass
min_words = 1024     # text sources: rows are appended until this many words (authors' min_word_count)
histograms = True    # False: means and correlations only, never a T x T matrix (long contexts)
device = 'auto'      # 'auto' = cuda when available, else cpu
dtype = 'float32'    # float32 | bfloat16 (the model's weights; metrics are always computed in float32)
seed = 0             # window offsets; text sources use seeds seed..seed+num_samples-1, as the authors
out_dir = 'out-measure'
compare = ''         # condensation.json files or out_dirs (comma-separated): side-by-side figure, no measuring
# -----------------------------------------------------------------------------

NUM_BINS = 128
NORM_FLOOR = 1e-3    # authors' normalize: x / max(||x||, 1e-3), so an all-zero token stays zero


# -----------------------------------------------------------------------------
# the metric

def normalize(x):
    """Unit-normalize each token (last dim), with the authors' floor on the norm."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(NORM_FLOOR)


def mean_cossim(hidden):
    """Per hidden state, the mean over all T^2 token pairs (diagonal included) of the cosine matrix, averaged
    over the B windows. hidden: list of [B, T, d] tensors -> list of floats.

    mean_ij(xhat_i . xhat_j) = ||sum_i xhat_i||^2 / T^2, so no T x T matrix is needed (O(T d), not O(T^2 d)).
    The authors clip each cosine to [-1, 1]. After normalize() every norm is <= 1, so by Cauchy-Schwarz
    |xhat_i . xhat_j| <= 1 in exact arithmetic and the clip can only move an entry by float32 rounding (~1e-7);
    leaving it out changes the mean by no more than that (tests check it against the clipped matrix)."""
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


def rank_correlations(means):
    """Spearman rho and Kendall tau of the per-layer means against the layer index 0..N, embedding layer
    included, as scipy.stats.spearmanr / kendalltau compute them by default (average ranks for ties; tau-b).
    Written out in numpy (tests compare with scipy) because importing scipy.stats costs more than measuring a
    small model. None when undefined (fewer than 2 layers, or constant means)."""
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


def mean_last_n(means):
    """[mean of the last n layer means for n = 1 .. N+1] (the paper plots n = 1..5 and n = N//2 + 1)."""
    return [float(np.mean(means[-n:])) for n in range(1, len(means) + 1)]


def summarize(means):
    """The across-layer scalars of a list of per-layer means."""
    rho, tau = rank_correlations(means)
    return dict(mean_cossim=[float(m) for m in means], spearman=rho, kendall=tau, mean_last_n=mean_last_n(means))


class CondensationStats:
    """Streaming accumulation over windows. With matrices=True it keeps, per hidden state, the running sum of
    the clipped T x T cosine matrices (float64, L*T*T*8 bytes: 27 MB for 13 states x 512 tokens), whatever the
    number of windows; finalize() averages them element-wise like the paper. With matrices=False it keeps only
    the per-layer sums of window means (no histograms)."""

    def __init__(self, matrices=True):
        self.matrices = matrices
        self.sums = None     # per hidden state: (T, T) float64 sum of cosine matrices, or a scalar sum of means
        self.count = 0       # windows seen

    @torch.no_grad()
    def update(self, hidden):
        B, T = hidden[0].shape[:2]
        if self.matrices:
            if self.sums is not None and self.sums[0].shape[0] != T:
                raise ValueError(f"windows must have equal length to be averaged position by position "
                                 f"(got {T} after {self.sums[0].shape[0]})")
            new = [cosine_matrices(h).sum(0, dtype=torch.float64) for h in hidden]  # (T, T) each
        else:
            new = [torch.tensor(m * B, dtype=torch.float64) for m in mean_cossim(hidden)]
        if self.sums is None:
            self.sums = new
        else:
            for s, n in zip(self.sums, new):
                s += n.to(s.device)
        self.count += B

    def finalize(self):
        """-> dict(mean_cossim, spearman, kendall, mean_last_n, histograms) over the windows seen."""
        if self.count == 0:
            raise ValueError("no windows were measured")
        if not self.matrices:
            return dict(summarize([s.item() / self.count for s in self.sums]), histograms=None)
        means, hists = [], []
        edges = np.linspace(-1.0, 1.0, NUM_BINS + 1)
        for s in self.sums:
            avg = (s / self.count).cpu().numpy()       # the averaged matrix S_bar of this layer
            means.append(avg.mean())
            hists.append(np.histogram(avg.ravel(), bins=edges, density=True)[0].tolist())
        return dict(summarize(means), histograms=hists)


# -----------------------------------------------------------------------------
# windows: token ids [num_samples, seq_len] from a token file or from text, with what identifies each

def token_windows(tokens, num_samples, seq_len, seed):
    """Windows at seeded random offsets of a flat token array -> (int64 array [N, T], offsets)."""
    if len(tokens) < seq_len:
        raise ValueError(f"the tokens hold {len(tokens)} tokens, fewer than seq_len={seq_len}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(tokens) - seq_len + 1, size=num_samples)
    windows = np.stack([np.asarray(tokens[s:s + seq_len], dtype=np.int64) for s in starts])
    return windows, [int(s) for s in starts]


WORD = re.compile(r"\w+|[^\w\s]")  # stands in for nltk.word_tokenize (needs a download): words and punctuation


def text_window(get_row, n_rows, seed, encode, seq_len, min_words):
    """The authors' get_random_long_text: a start row drawn from default_rng(seed) in [0, 0.95 * n_rows), then
    consecutive rows appended until the text has min_words words; tokenized and cut to seq_len. If the text is
    still shorter than seq_len tokens we keep appending rows (wrapping around once) so that every window has the
    same length, which position-aligned averaging needs. -> (token ids, start row)."""
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


# the text sources of Figure S2: load_dataset arguments and the text field (authors' utils/text_data.py)
HF_DATASETS = {
    'wikitext': (('wikitext', 'wikitext-103-v1'), 'text'),
    'pubmed_qa': (('pubmed_qa', 'pqa_labeled'), 'long_answer'),
    'imdb': (('imdb',), 'text'),
    'squad': (('squad',), 'context'),
}


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
        import data
        tokens = data.load_tokens(data.dataset_dir(name), 'val')
        windows, starts = token_windows(tokens, num_samples, seq_len, seed)
        if vocab_size is not None and windows.max() >= vocab_size:
            raise ValueError(f"dataset '{name}' has token id {windows.max()}, beyond the model's vocab ({vocab_size})")
        return windows, starts
    get_row, n_rows = text_rows(source)
    pairs = [text_window(get_row, n_rows, seed + i, encode, seq_len, min_words) for i in range(num_samples)]
    return np.array([p[0] for p in pairs], dtype=np.int64), [p[1] for p in pairs]


# -----------------------------------------------------------------------------
# models: our checkpoints, our GPT/Qwen3 for those hub models, transformers.AutoModel for the rest

def first_line(e):
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def load_ours(path):
    """A train.py checkpoint (out_dir or .pt file) -> dict(model, hidden, step, max_len, vocab_size, encode,
    default_source)."""
    from model import load_checkpoint
    import data
    m, ck = load_checkpoint(path, device='cpu')
    tokenizer = lru_cache(maxsize=1)(lambda: data.get_tokenizer(ck['data_meta']['tokenizer']))
    return dict(model=m, hidden=m.hidden_states, step=int(ck['step']), max_len=m.max_seq_len,
                vocab_size=m.config.vocab_size, encode=lambda text: tokenizer().encode(text),
                default_source=('dataset', (ck.get('config') or {}).get('dataset', '')))


def hf_model_type(name, revision=None):
    """model_type from config.json of a local dir or a hub id, without importing transformers (seconds)."""
    if os.path.isdir(name):
        path = os.path.join(name, 'config.json')
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no config.json in '{name}'")
    else:
        from huggingface_hub import hf_hub_download
        path = hf_hub_download(name, 'config.json', revision=revision)
    with open(path) as f:
        return json.load(f).get('model_type')


def load_hf(name, torch_dtype=torch.float32):
    """A hub id or HF dir, same dict as load_ours. gpt2 / qwen3 go through our model.py (the code our
    checkpoints run); any other architecture (Bloom, OLMo, older Qwen, ...) through transformers.AutoModel, since
    the metric only needs hidden states; those load straight in torch_dtype (a 32B model in bf16 needs 64 GB,
    not 128). 'id@revision' loads a hub revision (e.g. the OLMo stages of Fig 4)."""
    revision = None
    if '@' in name and not os.path.exists(name):
        name, revision = name.split('@', 1)
    if hf_model_type(name, revision) in ('gpt2', 'qwen3') and revision is None:
        from model import from_pretrained
        m = from_pretrained(name)
        hidden, max_len, vocab_size = (m.hidden_states), m.max_seq_len, m.config.vocab_size
    else:
        from transformers import AutoConfig, AutoModel
        cfg = AutoConfig.from_pretrained(name, revision=revision)  # unknown model types fail here
        m = AutoModel.from_pretrained(name, revision=revision, dtype=torch_dtype)
        hidden = lambda idx: m(input_ids=idx, output_hidden_states=True).hidden_states
        # ALiBi models (Bloom) have no position table, hence no limit to check
        max_len = getattr(cfg, 'max_position_embeddings', None) or getattr(cfg, 'n_positions', None)
        vocab_size = cfg.vocab_size

    @lru_cache(maxsize=1)
    def tokenizer():
        from transformers import AutoTokenizer
        return AutoTokenizer.from_pretrained(name, revision=revision)
    # the authors call tokenizer(text) with its defaults, so special tokens (e.g. a BOS) are kept
    encode = lambda text: tokenizer()(text)['input_ids']
    return dict(model=m.eval(), hidden=hidden, step=None, max_len=max_len, vocab_size=vocab_size,
                encode=encode, default_source=('hf_dataset', 'wikitext'))


@torch.inference_mode()
def measure_windows(hidden_fn, windows, batch_size, device, keep_matrices=True):
    """Batched forward passes over the windows, streamed into a CondensationStats."""
    from tqdm import tqdm
    acc = CondensationStats(matrices=keep_matrices)
    with tqdm(total=len(windows), desc='windows', file=sys.stderr, leave=False) as bar:
        for i in range(0, len(windows), batch_size):
            idx = torch.from_numpy(windows[i:i + batch_size]).to(device)
            acc.update(list(hidden_fn(idx)))
            bar.update(len(idx))
    return acc.finalize()


def measure_run(hidden_fn, ids, starts, batch_size, device, keep_matrices=True, **info):
    """measure_windows on the token windows `ids` [N, T], plus what identifies the measurement: the run record
    condensation.json holds. info: name, source, step, windows (the source's description), seed, dtype."""
    t0 = time.perf_counter()
    result = measure_windows(hidden_fn, ids, batch_size, device, keep_matrices)
    return dict(info, n_layers=len(result['mean_cossim']) - 1, num_samples=len(ids), seq_len=ids.shape[1],
                device=device, seconds=round(time.perf_counter() - t0, 3), starts=starts, **result)


# -----------------------------------------------------------------------------
# outputs (written atomically: a temp file in the same directory, then os.replace)

def atomic_write(path, write_fn, mode='w'):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix='.tmp_', suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def safe_name(name):
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('_') or 'run'


def csv_row(run):
    m = run['mean_cossim']
    return dict(name=run['name'], step=run['step'], n_layers=run['n_layers'], num_samples=run['num_samples'],
                seq_len=run['seq_len'], spearman=run['spearman'], kendall=run['kendall'], mean_first=m[0],
                mean_last_1=m[-1], mean_last_half=run['mean_last_n'][len(m) // 2], mean_all=run['mean_last_n'][-1])


def load_runs(path):
    """A condensation.json (or the out_dir holding one) -> list of run dicts (one-run files are flat)."""
    if os.path.isdir(path):
        path = os.path.join(path, 'condensation.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no condensation.json at '{path}'")
    with open(path) as f:
        obj = json.load(f)
    return obj['runs'] if 'runs' in obj else [obj]


def draw_heatmap(ax, run):
    """Figure 2a: one column per hidden state at x = index / (num_states - 1), density of cosines on y."""
    hist = np.array(run['histograms'])                  # (num_states, NUM_BINS)
    half = 0.5 / max(len(hist) - 1, 1)                  # columns centred on their layer fraction
    im = ax.imshow(hist.T, origin='lower', aspect='auto', cmap='Reds', vmin=0, vmax=10,
                   extent=[-half, 1 + half, -1, 1])
    ax.set_ylim(-0.25, 1)                               # the paper's display range
    ax.set_xlabel('layer fraction')
    ax.set_title(run['name'] if run['step'] is None or run['name'].endswith(f"step {run['step']}")
                 else f"{run['name']} (step {run['step']})", fontsize=9)
    return im


def save_figure(fig, path):
    import matplotlib.pyplot as plt
    atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=150, bbox_inches='tight'), mode='wb')
    plt.close(fig)


def plot_heatmaps(runs, path):
    """Side-by-side heatmaps (Figure 2a for one model, Figure 7 for baseline vs dispersion)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(runs), figsize=(3.6 * len(runs) + 0.8, 3.4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        im = draw_heatmap(ax, run)
    axes[0][0].set_ylabel('cosine similarity')
    fig.colorbar(im, ax=axes[0].tolist(), label='density')
    save_figure(fig, path)


def plot_trend(runs, path):
    """Figure 2b: mean cosine per layer fraction, one line per run, and the rank correlations per run."""
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        m = run['mean_cossim']
        ax1.plot(np.linspace(0, 1, len(m)), m, marker='.', label=run['name'])
    ax1.set_xlabel('layer fraction')
    ax1.set_ylabel('mean cosine similarity')
    ax1.legend(fontsize=7)
    nan = lambda v: np.nan if v is None else v
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
    save_figure(fig, path)


def write_outputs(runs, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    obj = runs[0] if len(runs) == 1 else {'runs': runs}
    atomic_write(os.path.join(out_dir, 'condensation.json'), lambda f: json.dump(obj, f, indent=1))

    def write_csv(f):
        rows = [csv_row(r) for r in runs]
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    atomic_write(os.path.join(out_dir, 'condensation.csv'), write_csv)
    with_hist = [r for r in runs if r['histograms'] is not None]
    for r in with_hist:
        name = 'heatmap.png' if len(runs) == 1 else f"heatmap_{safe_name(r['name'])}.png"
        plot_heatmaps([r], os.path.join(out_dir, name))
    plot_trend(runs, os.path.join(out_dir, 'trend.png'))


# -----------------------------------------------------------------------------
# CLI

def as_list(value):
    items = value if isinstance(value, (list, tuple)) else str(value).split(',')
    return [str(v).strip() for v in items if str(v).strip()]


def snapshot_paths(out):
    """ckpt_*.pt in step order, then ckpt.pt (skipped later if its step was already measured)."""
    if not os.path.isdir(out):
        raise ValueError(f"--snapshots needs a train.py out_dir, got '{out}'")
    snaps = {}  # step -> path; sorted by number, since past step 999999 the names stop sorting as text
    for p in glob.glob(os.path.join(out, 'ckpt_*.pt')):
        m = re.fullmatch(r'ckpt_(\d+)\.pt', os.path.basename(p))
        if m:
            snaps[int(m.group(1))] = p
    paths = [snaps[step] for step in sorted(snaps)]
    if os.path.isfile(os.path.join(out, 'ckpt.pt')):
        paths.append(os.path.join(out, 'ckpt.pt'))
    if not paths:
        raise FileNotFoundError(f"no ckpt.pt or ckpt_*.pt in '{out}'")
    return paths


def main():
    from configurator import configure, die
    import matplotlib
    matplotlib.use('Agg')
    configure(globals(), types={'ckpt': (str, list), 'init_from': (str, list), 'compare': (str, list)})

    if as_list(compare):
        try:
            labelled = [(p, r) for p in as_list(compare) for r in load_runs(p)]
        except (OSError, ValueError, KeyError) as e:
            die(first_line(e))
        runs = [r for _, r in labelled]
        if len({r['name'] for r in runs}) < len(runs):  # e.g. two runs of one script: say which file each is
            for p, r in labelled:
                r['name'] = f"{os.path.basename(os.path.normpath(p))}: {r['name']}"
        if any(r['histograms'] is None for r in runs):
            die("--compare needs runs measured with histograms=True")
        os.makedirs(out_dir, exist_ok=True)
        plot_heatmaps(runs, os.path.join(out_dir, 'compare.png'))
        plot_trend(runs, os.path.join(out_dir, 'compare_trend.png'))
        print(f"wrote {os.path.join(out_dir, 'compare.png')} and compare_trend.png ({len(runs)} runs)")
        return

    # what to measure: (kind, path or id, display name); local paths are named by their last component
    # (out-gpt2-disp, ckpt_000100.pt), unless two would share a name
    short = lambda p: os.path.basename(os.path.normpath(p)) if os.path.exists(p) else p
    given = [('ckpt', c) for c in as_list(ckpt)] + [('hf', name) for name in as_list(init_from)]
    names = [short(p) for _, p in given]
    if len(set(names)) < len(names):
        names = [p for _, p in given]
    subjects = []
    for (kind, path), name in zip(given, names):
        if kind == 'ckpt' and snapshots:
            try:
                subjects += [('ckpt', p, name) for p in snapshot_paths(path)]
            except (OSError, ValueError) as e:
                die(first_line(e))
        else:
            subjects.append((kind, path, name))
    if not subjects:
        die("nothing to measure: give --ckpt, --init_from or --compare")
    sources = [(k, v) for k, v in (('dataset', dataset), ('text_file', text_file), ('hf_dataset', hf_dataset)) if v]
    if len(sources) > 1:
        die("give at most one of --dataset, --text_file, --hf_dataset")
    if hf_dataset and hf_dataset not in HF_DATASETS:
        die(f"unknown hf_dataset '{hf_dataset}' (one of: {', '.join(HF_DATASETS)})")
    if num_samples < 1 or seq_len < 2 or batch_size < 1:
        die("num_samples and batch_size must be >= 1 and seq_len >= 2")
    if dtype not in ('float32', 'bfloat16'):
        die(f"dtype must be float32 or bfloat16, got '{dtype}'")
    dev = ('cuda' if torch.cuda.is_available() else 'cpu') if device == 'auto' else device
    ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[dtype]

    runs, steps_seen = [], set()
    for kind, path, name in subjects:
        try:
            sub = load_ours(path) if kind == 'ckpt' else load_hf(path, ptdtype)
        except Exception as e:  # missing files, unknown architectures, bad checkpoints: one line each
            die(f"cannot load {'checkpoint' if kind == 'ckpt' else 'model'} '{path}': {first_line(e)}")
        if snapshots and kind == 'ckpt':
            if (name, sub['step']) in steps_seen:
                continue  # ckpt.pt is the same step as the last snapshot
            steps_seen.add((name, sub['step']))
            name = f"{name} step {sub['step']}"
        if sub['max_len'] is not None and seq_len > sub['max_len']:
            die(f"seq_len={seq_len} is beyond the context of '{path}' ({sub['max_len']} tokens)")
        source = sources[0] if sources else sub['default_source']
        if not source[1]:
            die(f"no windows for '{path}': give --dataset, --text_file or --hf_dataset")
        try:
            windows, starts = make_windows(source, sub['encode'], sub['vocab_size'], num_samples, seq_len, seed,
                                           min_words)
        except Exception as e:  # missing data, offline hub, too-short text
            die(f"cannot make windows from {source[0]} '{source[1]}': {first_line(e)}")
        sub['model'].to(device=dev, dtype=ptdtype)
        print(f"measuring {name}: {len(windows)} windows x {seq_len} tokens from {source[0]} '{source[1]}' on {dev}")
        run = measure_run(sub['hidden'], windows, starts, batch_size, dev, keep_matrices=histograms, name=name,
                          source=path, step=sub['step'], windows=f"{source[0]}:{source[1]}", seed=seed, dtype=dtype)
        runs.append(run)
        del sub  # free the model before loading the next one
        print(f"  {run['seconds']:.1f}s | spearman {run['spearman']} | kendall {run['kendall']} | "
              f"mean_last_1 {run['mean_cossim'][-1]:.4f}")
    write_outputs(runs, out_dir)
    print(f"wrote {os.path.join(out_dir, 'condensation.json')} ({len(runs)} run{'s' if len(runs) > 1 else ''})")


if __name__ == '__main__':
    main()
