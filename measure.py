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

The metric (the authors' per-layer mean cosine, KrishnaswamyLab/LM-Dispersion, and their PyPI package
`embedding-condensation`; docs/measure_bench.md compares the two) and the other geometry measures of --measures
are defined in condensation.py, its docstring and functions.

Models past one device: --device_map=auto hands the weights to accelerate's big-model inference (GPUs, then CPU
memory, then disk, within --max_memory); the hidden states come back to one device, where the metric is
computed in float32, a batch at a time, so memory does not grow with num_samples.

Windows: seq_len tokens, the paper's 512 by default; a model whose context is shorter gets windows of its context
(several models measured together: the smallest of their contexts, so that they stay comparable), and the printout
says so. A seq_len given in a config file or on the command line is used as given, and one that does not fit a
model is an error.

--ckpt takes a run (a train.py out_dir: ckpt.pt, an FSDP run's ckpt_sharded/, snapshots), a .pt file, or a folder
whose sub-folders are runs: each of them is measured, in name order, and out_dir defaults to that folder.

Outputs in out_dir: condensation.json and condensation.csv (their fields, writing, reading back and checking:
records.py), both rewritten after each model; every run measured there before stays (other models, other
settings), and one measured there before with the same settings is not measured again, so an interrupted family
run resumes where it stopped. figures.py draws, from these dicts alone, heatmap.png (or heatmap_<name>.png
each), trend.png, for several models last_n.png, and with --pairs pairs.png; with --measures trend_<measure>.png
each, and for snapshots steps.png; --compare: compare(_trend).png.
"""

import fnmatch
import gc
import json
import os
import re
from functools import lru_cache

import numpy as np
import torch

import figures
from atomic import check_output
from checkpoint import SHARDED_STATE, is_sharded, latest_checkpoint, run_dirs, torch_load
# the measures' definitions; the rest re-exported, so that measure.mean_cossim etc. stay condensation's
from condensation import (ALL_MEASURES, MEASURES, NORM_FLOOR, NUM_BINS, cosine_matrices, effective_rank,  # noqa: F401
                          eigenvalues, exact_float32, geometry, gram, isoscore, layer_trend, mean_cossim, measure_run,
                          normalize, offdiag_cossim, parse_measures, pca_variance_share, rank_correlations,
                          window_mean_cossim)
from configurator import Choice, Device, Range, config_keys, configure, die, one_line
from data import check_token_ids, dataset_dir, get_tokenizer, load_meta, load_tokens
from hf_io import from_pretrained, hf_model_type, load_causal_lm
from parallel import load_checkpoint, pick_device  # load_checkpoint: ckpt.pt files and sharded folders
# condensation.json's record; all re-exported, so that measure.write_outputs etc. stay records'
from records import csv_row, load_measured, merge, modified, run_problem, settings, write_outputs  # noqa: F401

# -----------------------------------------------------------------------------
# defaults (override with a config file or --key=value; the annotations say what each allows: configurator.py)
ckpt: str | list = ''       # train.py out_dir(s) or .pt file(s), comma-separated for several (Fig 3)
snapshots = False           # with --ckpt=<dir>: every ckpt_*.pt in it plus ckpt.pt, one row per step
init_from: str | list = ''  # HF hub id(s) or HF dir(s), comma-separated; 'id@rev' picks a hub revision, and
                            # 'id@stage1-*' every branch the pattern matches, in training order (Fig 4)
pairs = False               # init_from holds base models, then their distilled models in the same order (Fig 5)
dataset = ''                # windows from data/<name>/val.bin (or a path); default: the checkpoint's own dataset
text_file = ''              # windows from a text file, one row per line, sampled like the authors' recipe
hf_dataset: Choice('', names_in='HF_DATASETS') = ''  # wikitext | pubmed_qa | imdb | squad (Fig S2); the default
                            # for --init_from: wikitext
num_samples: Range(min=1) = 100  # windows (the paper's 100 repetitions)
seq_len: Range(min=2) = 512  # tokens per window (the paper's max_length); left at this default, shortened to the
                            # context of a model that is shorter (see above)
batch_size: Range(min=1) = 8  # windows per forward pass
min_words: Range(min=0) = 1024  # text sources: rows are appended until this many words (authors' min_word_count)
histograms = True           # False: means and correlations only, never a T x T matrix (long contexts)
measures: str | list = 'mean_cossim'  # add other geometry measures from the same pass: 'all' or a comma list of
                            # mean_cossim_offdiag, effective_rank, isoscore, pca_top<k> (condensation.py)
device: Device() = 'auto'   # 'auto' = cuda when available, else cpu; or cpu, cuda, cuda:N, mps
dtype: Choice('float32', 'bfloat16') = 'float32'  # the model's weights; metrics are always computed in float32
device_map: Choice('', 'auto', 'balanced', 'balanced_low_0', 'sequential') = ''  # '' = the whole model on
                            # `device`; 'auto' = over every GPU, then CPU, then disk (the others: accelerate's)
max_memory = ''             # with device_map: the budget per device, e.g. '0:70GiB,1:70GiB,cpu:200GiB'
offload_folder = ''         # with device_map: where the weights go that fit in no memory (disk offload)
trust_remote_code = False   # run a hub model's own modeling code (Qwen1 needs it): read that code first
trust_checkpoint = False    # load ckpt.pt files with full pickle, which can run code: only files you made yourself
seed: Range(min=0) = 0      # window offsets (numpy: no negative seed); text sources use seeds
                            # seed..seed+num_samples-1, as the authors
out_dir = ''                # '' = the folder of runs given as the one --ckpt, else out-measure
compare: str | list = ''    # condensation.json files or out_dirs, comma-separated: side-by-side figure, no measuring
dry_run = False             # print the resolved config, the models and out_dir, then exit: nothing is read or written
# -----------------------------------------------------------------------------
CONFIG_KEYS = config_keys(globals())  # the names above; main() configures them (train.py imports this file)


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


def make_windows(source, encode, vocab_size, num_samples, seq_len, seed, min_words=1024, tokenizer=''):
    """source: ('dataset', name) | ('text_file', path) | ('hf_dataset', name) -> (windows [N, T] int64, starts):
    the window offsets in val.bin, or the start row of each text. Token ids past vocab_size (the model's; None: no
    check) are a one-line ValueError naming them and the tokenizer (that of the dataset's meta.json, or `tokenizer`,
    the name of the one encode uses), before the model meets them."""
    kind, name = source
    if kind == 'dataset':
        folder = dataset_dir(name)
        windows, starts = token_windows(load_tokens(folder, 'val'), num_samples, seq_len, seed)
        if vocab_size is not None:
            check_token_ids(windows, vocab_size, load_meta(folder)['tokenizer'], 'its val.bin')
        return windows, starts
    get_row, n_rows = text_rows(source)
    pairs = [text_window(get_row, n_rows, seed + i, encode, seq_len, min_words) for i in range(num_samples)]
    windows = np.array([p[0] for p in pairs], dtype=np.int64)
    if vocab_size is not None:
        check_token_ids(windows, vocab_size, tokenizer or '?', 'the text, tokenized,')
    return windows, [p[1] for p in pairs]


# -----------------------------------------------------------------------------
# models: our checkpoints, our GPT/Qwen3 for those hub models, transformers for the rest.
# Each loader returns dict(model, hidden_states, step, n_params, max_len, vocab_size, encode, default_source,
# tokenizer: the name of the one encode uses, for messages),
# where hidden_states(idx [B, T]) -> the n_layer + 1 hidden states and max_len is None when there is no limit.
# n_params counts every parameter, a tied LM head once.

def load_train_checkpoint(path, trust_checkpoint=False):
    """A train.py out_dir (its ckpt.pt) or .pt file."""
    m, ck = load_checkpoint(path, device='cpu', trust_checkpoint=trust_checkpoint)
    tokenizer = lru_cache(maxsize=1)(lambda: get_tokenizer(ck['data_meta']['tokenizer']))  # only text needs it
    return dict(model=m, hidden_states=m.hidden_states, step=int(ck['step']), n_params=m.num_params(),
                tokenizer=(ck.get('data_meta') or {}).get('tokenizer'),
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
                tokenizer=name + (f'@{revision}' if revision else ''),
                vocab_size=vocab_size, encode=lambda text: tokenizer()(text)['input_ids'],
                default_source=('hf_dataset', 'wikitext'))


# the revisions of a hub repository (--init_from=id@pattern), in training order: Figure 4's snapshots

def revision_order(branch):
    """Training order of a hub branch: (stage, training tokens, step, name), each number where the name says it:
    'stage1-step10000-tokens42B' (OLMo 2) -> (1, 42e9, 10000, ...). OLMo 3's branches name no tokens
    ('stage1-step1413814'); within a stage, the step orders them as the tokens would. Missing numbers sort last."""
    number = lambda pattern: float(m.group(1)) if (m := re.search(pattern, branch)) else float('inf')
    unit = re.search(r'tokens\d+(?:\.\d+)?([KMBT]?)', branch)
    tokens = number(r'tokens(\d+(?:\.\d+)?)') * {'K': 1e3, 'M': 1e6, 'B': 1e9, 'T': 1e12}.get(unit and unit[1], 1)
    return number(r'stage(\d+)'), tokens, number(r'step(\d+)'), branch


def hub_revisions(name):
    """'id@pattern' with a glob pattern (*, ?, [...]) -> ['id@branch', ...]: the repository's branches that match
    (huggingface_hub.list_repo_refs), in training order; any other name -> [name]."""
    repo, _, pattern = name.partition('@')
    if not any(c in pattern for c in '*?[') or os.path.exists(name):
        return [name]
    from huggingface_hub import list_repo_refs
    try:
        branches = [b.name for b in list_repo_refs(repo).branches]
    except Exception as e:
        raise ValueError(f"cannot list the revisions of '{repo}' on the hub (offline?): {one_line(e)}") from e
    found = sorted((b for b in branches if fnmatch.fnmatchcase(b, pattern)), key=revision_order)
    if not found:
        raise ValueError(f"no revision of '{repo}' matches '{pattern}' (it has {len(branches)} branches)")
    return [f"{repo}@{b}" for b in found]


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
            check_output(out_dir, 'out_dir', folder=True)
        except ValueError as e:
            die(str(e), 2)
        try:
            for path in as_list(compare):
                load_measured(path, full=False)  # each file checked first: a malformed one is named, with its field
            runs = figures.compare(as_list(compare), out_dir)
        except (OSError, ValueError) as e:  # a missing or malformed condensation.json, a full disk
            die(one_line(e))
        print(f"wrote {os.path.join(out_dir, 'compare.png')} and compare_trend.png ({len(runs)} runs)")
        return
    sources = [(k, v) for k, v in (('dataset', dataset), ('text_file', text_file), ('hf_dataset', hf_dataset)) if v]
    if len(sources) > 1:
        die("give at most one of --dataset, --text_file, --hf_dataset")
    try:
        measured = parse_measures(measures)
    except ValueError as e:
        die(one_line(e), 2)
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
    try:  # before any model is loaded: an out_dir that cannot be one costs nothing
        check_output(out_dir, 'out_dir', folder=True)
    except ValueError as e:
        die(str(e), 2)
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
    dev = pick_device(device)[0]  # 'auto' = cuda when available, else cpu
    ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16}[dtype]
    try:  # what this out_dir measured before: kept (merge), and not measured again with the same settings
        earlier = load_measured(out_dir) if os.path.isfile(os.path.join(out_dir, 'condensation.json')) else []
    except (OSError, ValueError) as e:
        die(f"cannot read what {out_dir} measured before: {one_line(e)} (move its condensation.json away)")
    before = {settings(r): r for r in earlier}
    others = [r['name'] for r in earlier if r.get('source') not in {p for _, p, _ in subjects}]
    if others:
        print(f"{out_dir}/condensation.json keeps the {len(others)} run(s) measured there before: {', '.join(others)}")

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
                                           seed, min_words, tokenizer=loaded['tokenizer'])
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
        try:
            write_outputs(merge(earlier, runs), out_dir, draw=False, rescue=True)
        except OSError as e:
            die(str(e))
        del loaded  # free the model before the next one, whose device_map accelerate sizes by the free memory
        gc.collect()
        torch.cuda.empty_cache()
        print(f"  {runs[-1]['seconds']:.1f}s | spearman {runs[-1]['spearman']} | kendall {runs[-1]['kendall']} | "
              f"mean_last_1 {runs[-1]['mean_cossim'][-1]:.4f}")
    everything = merge(earlier, runs)
    try:
        write_outputs(everything, out_dir, rescue=True)
        if pairs:  # the pairs of this measurement alone: runs kept from before would break its order
            figures.plot_pairs(runs, os.path.join(out_dir, 'pairs.png'))
    except OSError as e:
        die(str(e))
    kept = f", {len(everything) - len(runs)} of them from before" if len(everything) > len(runs) else ''
    print(f"wrote {os.path.join(out_dir, 'condensation.json')} ({len(everything)} run"
          f"{'s' if len(everything) > 1 else ''}{kept})")


if __name__ == '__main__':
    main()
