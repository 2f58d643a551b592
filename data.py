"""
Token data: the one place that knows how a dataset sits on disk, how it was tokenized, and how it is written.

A dataset is a folder with `train.bin` and `val.bin` (flat token ids, documents joined by an end-of-text
token) and `meta.json` = {"tokenizer": "byte" | "gpt2" | "<hub id or tokenizer dir>", "dtype": "uint16" |
"uint32", "vocab_size": int, "eot_token": int}. Readers (train.py, measure.py, eval.py, sample.py):

    from data import dataset_dir, load_meta, load_tokens, get_tokenizer
    d = dataset_dir('wikitext')           # a name under data/ or a path; prepared on first use (see below)
    meta = load_meta(d)
    train_ids = load_tokens(d, 'train')   # np.memmap, dtype from meta.json
    tok = get_tokenizer(meta['tokenizer']); print(tok.decode(train_ids[:100]))
    windows = batch_windows(d, 'train', seed, step, global_batch, block_size, 0, 8, meta['vocab_size'])  # train.py

Writers are the scripts `data/<name>/prepare.py`; they all go through `write_tokens` below.

First use: dataset_dir prepares a dataset that has a prepare script (pydocs, wikitext, wikitext_qwen3, fineweb_edu,
fineweb_edu_qwen3: FIRST_USE below, and any other data/<name>/prepare.py) when its folder has no meta.json, by
running that script with --out_dir=the folder: by name in data/<name>, or at a path that ends in the name
(--dataset=/scratch/wikitext prepares wikitext there). Under torchrun one process prepares and the others wait for
it (a file lock in the folder, see prepare_on_first_use). The environment variable DATA_PREPARE_ARGS adds arguments
to those runs, a JSON object {dataset name: [arguments]}: local files in place of the hub (offline machines, tests),
another tokenizer. From Python:
    os.environ['DATA_PREPARE_ARGS'] = json.dumps({'wikitext': ["--data_files={'train': 'wiki.train.raw', "
                                                               "'validation': 'wiki.valid.raw'}"]})
"""

import fcntl
import glob
import json
import os
import re
import subprocess
import sys
from collections import deque
from itertools import islice

import numpy as np

from configurator import one_line

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')  # where dataset names live
SCRIPTS_DIR = DATA_DIR  # where the prepare scripts live (DATA_DIR may point elsewhere; these stay with the code)
# datasets prepared on first use: name -> (folder of its prepare.py under data/, its arguments, what it reads)
FIRST_USE = {
    'pydocs': ('pydocs', (), "reads the standard library's docstrings, a few seconds"),
    'wikitext': ('wikitext', (), 'downloads Salesforce/wikitext from the Hugging Face hub'),
    'wikitext_qwen3': ('wikitext', ('--tokenizer=Qwen/Qwen3-0.6B',),
                       'downloads Salesforce/wikitext and the Qwen3 tokenizer from the Hugging Face hub'),
    'fineweb_edu': ('fineweb_edu', (), 'downloads codelion/fineweb-edu-1B from the Hugging Face hub'),
    'fineweb_edu_qwen3': ('fineweb_edu', ('--tokenizer=Qwen/Qwen3-0.6B',),
                          'downloads codelion/fineweb-edu-1B and the Qwen3 tokenizer from the Hugging Face hub'),
}
PREPARE_ARGS_ENV = 'DATA_PREPARE_ARGS'
META_KEYS = ('tokenizer', 'dtype', 'vocab_size', 'eot_token')
BYTE_EOT = 256  # the byte tokenizer's end-of-text id, one past the 256 byte values
FILE_FORMATS = {'txt': 'text', 'raw': 'text', 'json': 'json', 'jsonl': 'json', 'parquet': 'parquet'}  # --data_files

# -----------------------------------------------------------------------------
# reading


def dataset_dir(dataset):
    """Folder of a dataset: a name under data/ (e.g. 'pydocs', 'wikitext') or a path (anything with a slash).
    A folder without meta.json whose name has a prepare script (first_use_recipe) is prepared first."""
    is_name = '/' not in dataset and os.sep not in dataset and dataset not in ('.', '..')
    path = os.path.join(DATA_DIR, dataset) if is_name else dataset
    if os.path.isfile(os.path.join(path, 'meta.json')):
        return path
    name = os.path.basename(os.path.normpath(path))
    recipe = first_use_recipe(name)
    if recipe:
        prepare_on_first_use(name, path, *recipe)
        return path
    if is_name:
        how = f"python data/{dataset}/prepare.py" if os.path.isdir(path) else "a data/<name>/prepare.py script"
        have = sorted(n for n in os.listdir(DATA_DIR) if os.path.isdir(os.path.join(DATA_DIR, n))) \
            if os.path.isdir(DATA_DIR) else []
        raise FileNotFoundError(f"dataset '{dataset}' is not prepared: {path} has no meta.json "
                                f"(create it with {how}; datasets under data/: {', '.join(have) or 'none'})")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"dataset directory {path} not found (create it with python data/<name>/prepare.py "
                                f"--out_dir={path})")
    raise FileNotFoundError(f"{path} has no meta.json (write the dataset with python data/<name>/prepare.py "
                            f"--out_dir={path})")


def first_use_recipe(name):
    """(prepare script, its arguments, a few words on what it reads) for a dataset name, or None: FIRST_USE, else
    data/<name>/prepare.py with no arguments; DATA_PREPARE_ARGS[name] is added to the arguments."""
    folder, args, source = FIRST_USE.get(name) or (name, (), f'runs data/{name}/prepare.py')
    script = os.path.join(SCRIPTS_DIR, folder, 'prepare.py')
    if not os.path.isfile(script):
        return None
    extra = prepare_args_from_env().get(name, [])
    if extra:  # these may replace the hub by local files: say what runs instead
        source = f"{PREPARE_ARGS_ENV} adds {' '.join(extra)}"
    return script, [*args, *extra], source


def prepare_args_from_env():
    """DATA_PREPARE_ARGS: a JSON object {dataset name: [arguments of its prepare script]}, or {} when unset."""
    text = os.environ.get(PREPARE_ARGS_ENV, '').strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{PREPARE_ARGS_ENV} is not valid JSON ({e})") from None
    if not (isinstance(value, dict) and all(isinstance(v, list) and all(isinstance(a, str) for a in v)
                                            for v in value.values())):
        raise ValueError(f"{PREPARE_ARGS_ENV} must be a JSON object {{dataset name: [arguments]}}, got {text[:100]}")
    return value


def prepare_on_first_use(name, path, script, args, source):
    """Run `python script args --out_dir=path` unless path already holds meta.json, once for all the processes of
    a job: an exclusive flock on path/prepare.lock. Whoever gets it first prepares; the others block on it, then
    find meta.json and read the files. No torch.distributed is needed, so this works before (or without) a process
    group. On several nodes, a shared file system serializes them through the same lock (where it supports flock:
    NFS does, Lustre only when mounted with -o flock); with separate disks each node prepares its own copy.
    A preparation that stops (error, Ctrl-C, SIGKILL, full disk) leaves no meta.json, as write_tokens writes it
    last, so the next run prepares again; the processes that were waiting for it fail instead of each retrying."""
    meta = os.path.join(path, 'meta.json')
    try:
        os.makedirs(path, exist_ok=True)
        lock = open(os.path.join(path, 'prepare.lock'), 'a')  # never deleted: deleting would race a new locker
    except OSError as e:
        raise ValueError(f"cannot prepare dataset '{name}' in {path}: {one_line(e)}") from None
    with lock:
        waited, locked = False, True
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the holder ends, however it ends
        except OSError as e:  # a file system without locks: concurrent preparations write the same bytes, each
            locked = False    # file renamed into place whole, so they are only wasted work
            print(f"WARNING: cannot lock {path} ({one_line(e)}): every process of a job prepares '{name}' itself")
        if os.path.isfile(meta):
            return
        if waited:
            raise FileNotFoundError(f"dataset '{name}': the process preparing it in {path} stopped before the end "
                                    f"(see its error above); run again to prepare it again")
        if locked:  # temporary files of a preparation that was killed (atomic_write's <file>.<pid>.tmp), only those
            for tmp in glob.glob(os.path.join(path, '*.tmp')):
                if re.fullmatch(r'(train\.bin|val\.bin|meta\.json)\.\d+\.tmp', os.path.basename(tmp)):
                    os.remove(tmp)
        print(f"preparing dataset '{name}' in {path} (first use; {source})", flush=True)
        # a fresh interpreter keeps the script's imports (and their side effects) out of the caller, and the bytes
        # independent of it; it holds the lock too (an inherited descriptor), so a preparation that outlives this
        # process (killed by torchrun when another process fails) still keeps the next run waiting until its end
        cmd = [sys.executable, script, *args, f'--out_dir={path}']
        result = subprocess.run(cmd, pass_fds=(lock.fileno(),))
        if result.returncode != 0 or not os.path.isfile(meta):
            raise FileNotFoundError(f"dataset '{name}' could not be prepared (exit code {result.returncode}; see the "
                                    f"error above), or prepare it yourself: python {' '.join(cmd[1:])}")


def token_dtype(vocab_size):
    """uint16 holds ids 0..65535, enough for GPT-2's 50,257 tokens; bigger vocabularies (Qwen3) need uint32."""
    return 'uint16' if vocab_size <= 2**16 else 'uint32'


def load_meta(folder):
    """Read and check folder/meta.json: a FileNotFoundError if it is missing, else every problem is a one-line
    ValueError naming the file."""
    path = os.path.join(folder, 'meta.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found (a dataset folder needs train.bin, val.bin and meta.json)")
    try:
        with open(path) as f:
            meta = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)} (needs {', '.join(META_KEYS)})")
    if not isinstance(meta['tokenizer'], str) or not meta['tokenizer']:
        raise ValueError(f"{path}: 'tokenizer' must be a non-empty string, got {meta['tokenizer']!r}")
    for k in ('vocab_size', 'eot_token'):
        if type(meta[k]) is not int:
            raise ValueError(f"{path}: '{k}' must be an integer, got {meta[k]!r}")
    if meta['vocab_size'] <= 0:
        raise ValueError(f"{path}: vocab_size must be positive, got {meta['vocab_size']}")
    if not 0 <= meta['eot_token'] < meta['vocab_size']:
        raise ValueError(f"{path}: eot_token {meta['eot_token']} is outside the vocabulary [0, {meta['vocab_size']})")
    if meta['dtype'] not in ('uint16', 'uint32'):
        raise ValueError(f"{path}: dtype must be 'uint16' or 'uint32', got {meta['dtype']!r}")
    if meta['dtype'] == 'uint16' and meta['vocab_size'] > 2**16:
        raise ValueError(f"{path}: dtype uint16 cannot hold vocab_size {meta['vocab_size']} (ids up to 65535); "
                         f"use uint32")
    return meta


def load_tokens(folder, split):
    """The tokens of folder/{split}.bin as a read-only np.memmap (no copy: the file can be far bigger than RAM)."""
    meta = load_meta(folder)
    path = os.path.join(folder, f'{split}.bin')
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found")
    dtype = np.dtype(meta['dtype'])
    size = os.path.getsize(path)
    if size % dtype.itemsize:
        raise ValueError(f"{path}: {size} bytes is not a whole number of {meta['dtype']} tokens "
                         f"(a truncated file, or a meta.json that does not belong to it)")
    if size == 0:
        raise ValueError(f"{path} is empty")
    return np.memmap(path, dtype=dtype, mode='r')


def batch_windows(folder, split, seed, index, global_batch, block_size, first, count, vocab_size):
    """Windows first..first+count-1 of train.py's global batch keyed by (seed, split, index): int64 [count,
    block_size + 1] (inputs and next-token targets). The offsets come from a numpy generator seeded with (seed,
    split, index) alone, so an optimizer step's global batch depends on nothing else (not the process count, not
    what was read before), and each process reads only its own share. A token id past vocab_size (meta.json's: a
    .bin that is not meta.json's would index past the embedding) is a one-line ValueError."""
    data = load_tokens(folder, split)  # a fresh memmap per batch: long-lived ones leak memory
    rng = np.random.default_rng([seed, 0 if split == 'train' else 1, index])
    starts = rng.integers(0, len(data) - block_size - 1, size=global_batch)[first:first + count]
    windows = np.stack([data[s:s + block_size + 1] for s in starts]).astype(np.int64)
    if windows.max() >= vocab_size:
        raise ValueError(f"{folder}/{split}.bin holds token id {windows.max()}, beyond meta.json's vocab_size "
                         f"{vocab_size}: the file does not belong to this meta.json")
    return windows


def check_token_ids(ids, vocab_size, tokenizer, what):
    """A one-line ValueError when ids (tokens of `what`, made by `tokenizer`) hold ids a model of vocab_size tokens
    has no embedding for: the model would fail on an index out of range, or the tokenizer is not the model's."""
    ids = np.asarray(ids)
    bad = np.unique(ids[(ids < 0) | (ids >= vocab_size)])
    if bad.size:
        shown = ', '.join(map(str, bad[:5])) + (f' (+{bad.size - 5} more)' if bad.size > 5 else '')
        raise ValueError(f"{what} has token id{'s' * (bad.size > 1)} {shown} (tokenizer '{tokenizer}'), beyond "
                         f"the model's vocabulary of {vocab_size} (ids 0-{vocab_size - 1}): the tokenizer is not "
                         f"the model's")

# -----------------------------------------------------------------------------
# tokenizers


class Tokenizer:
    """What every script needs of a tokenizer: encode(str) -> list[int], decode(ids) -> str, eot_token, vocab_size."""

    def __init__(self, name, encode, decode, eot_token, vocab_size):
        self.name, self.encode, self.decode = name, encode, decode
        self.eot_token, self.vocab_size = eot_token, vocab_size

    def __repr__(self):
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size}, eot_token={self.eot_token})"


def _decode_bytes(ids):
    # ids >= 256 (end-of-text, or padding ids a model may emit) are not text; broken UTF-8 becomes U+FFFD
    return bytes(int(i) for i in ids if 0 <= i < 256).decode('utf-8', errors='replace')


def _auto_tokenizer(name):
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(name)
    except Exception as e:  # offline, unknown id, broken folder: all end here
        raise ValueError(f"could not load the Hugging Face tokenizer '{name}' ({one_line(e)[:200]}); "
                         f"it needs the hub once, or a local folder saved with save_pretrained") from None


def get_tokenizer(name):
    """'byte' (UTF-8 bytes, eot 256, no download), 'gpt2' (tiktoken), or a HF hub id / local tokenizer folder."""
    if name == 'byte':
        return Tokenizer('byte', lambda text: list(text.encode('utf-8')), _decode_bytes, BYTE_EOT, BYTE_EOT + 1)
    if name == 'gpt2':
        import tiktoken
        try:
            enc = tiktoken.get_encoding('gpt2')
        except Exception as e:
            raise ValueError(f"tiktoken could not load its gpt2 BPE file ({type(e).__name__}): it downloads it once "
                             f"from openaipublic.blob.core.windows.net, or set TIKTOKEN_CACHE_DIR to a folder that "
                             f"holds it") from None
        # encode_ordinary: a literal "<|endoftext|>" inside a document stays text, never a separator
        return Tokenizer('gpt2', enc.encode_ordinary, lambda ids: enc.decode([int(i) for i in ids]),
                         enc.eot_token, enc.n_vocab)
    tok = _auto_tokenizer(name)
    if tok.eos_token_id is None:
        raise ValueError(f"tokenizer '{name}' has no eos token, which documents need as their separator")
    return Tokenizer(name, lambda text: tok.encode(text, add_special_tokens=False),
                     lambda ids: tok.decode([int(i) for i in ids]), tok.eos_token_id, len(tok))


def _byte_chars():
    """GPT-2's printable stand-in for each byte: printable Latin-1 bytes keep their character, the other 68
    bytes get chr(256), chr(257), ... in byte order. The `tokenizers` ByteLevel steps speak this alphabet."""
    keep = {*range(ord('!'), ord('~') + 1), *range(ord('¡'), ord('¬') + 1), *range(ord('®'), ord('ÿ') + 1)}
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def hf_tokenizer(name):
    """A transformers tokenizer with the same ids as get_tokenizer(name), for lm-eval's HFLM."""
    if name == 'byte':
        from tokenizers import AddedToken, Tokenizer as RustTokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast
        # a BPE without merges over the byte alphabet: every UTF-8 byte is one token whose id is the byte value
        vocab = {c: b for b, c in _byte_chars().items()}
        rust = RustTokenizer(models.BPE(vocab=vocab, merges=[]))
        rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        rust.decoder = decoders.ByteLevel()
        rust.add_special_tokens([AddedToken('<|endoftext|>', special=True)])  # id 256 = BYTE_EOT
        tok = PreTrainedTokenizerFast(tokenizer_object=rust, bos_token='<|endoftext|>', eos_token='<|endoftext|>',
                                      clean_up_tokenization_spaces=False)
        assert tok.eos_token_id == BYTE_EOT
    else:
        tok = _auto_tokenizer(name)
    if tok.pad_token is None:  # lm-eval pads batches; GPT-2 has no pad token and HF pads with eos too
        tok.pad_token = tok.eos_token
    return tok

# -----------------------------------------------------------------------------
# writing: what the data/<name>/prepare.py scripts share


def load_documents(path, name=None, data_files=None, streaming=False):
    """A datasets DatasetDict from the hub (path, config name) or, with data_files, from local text/json/parquet
    files. Only the load_dataset arguments differ, so tests on local files run the same code as the hub.
    data_files: a file, a list of files, or {split: files}, as load_dataset takes them."""
    import datasets
    if data_files:
        groups = data_files.values() if isinstance(data_files, dict) else [data_files]
        files = [f for g in groups for f in ([g] if isinstance(g, str) else g)]
        exts = {f.rsplit('.', 1)[-1].lower() for f in files}
        builders = {FILE_FORMATS.get(e) for e in exts}
        if len(builders) != 1 or None in builders:
            raise ValueError(f"--data_files: expected files of one format (.txt/.raw, .json/.jsonl or .parquet), got "
                             f"{', '.join(sorted(exts))}")
        builder = builders.pop()
        # text rows keep their line ends, like the hub's wikitext rows (' = Title = \n')
        kwargs = {'keep_linebreaks': True} if builder == 'text' else {}
        try:
            return datasets.load_dataset(builder, data_files=data_files, streaming=streaming, **kwargs)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"--data_files: {e}") from None
    try:
        return datasets.load_dataset(path, name, streaming=streaming)
    except Exception as e:
        raise ValueError(f"could not load {path}{' (' + name + ')' if name else ''} from the Hugging Face hub "
                         f"({one_line(e)[:200]}); fetch it where there is internet (`hf download {path} "
                         f"--repo-type dataset --local-dir <dir>`) and pass its files with --data_files") from None


def texts(dataset, column='text'):
    """The strings of one column of a datasets Dataset/IterableDataset, read in batches (much faster than rows)."""
    for batch in dataset.iter(batch_size=1000):
        if column not in batch:
            raise ValueError(f"the data has no '{column}' column (it has {', '.join(batch) or 'none'})")
        yield from batch[column]


_worker_tokenizer = None


def _init_worker(tokenizer_name):
    global _worker_tokenizer
    _worker_tokenizer = get_tokenizer(tokenizer_name)


def _encode_batch(docs, tok=None):
    """Token ids of a list of documents, an end-of-text token after each one, as one flat array."""
    tok = tok or _worker_tokenizer
    ids = []
    for doc in docs:
        ids.extend(tok.encode(doc))
        ids.append(tok.eot_token)
    return np.array(ids, dtype=np.uint32)


def _encoded_batches(docs, tokenizer_name, tok, num_proc, docs_per_batch=256):
    """Encoded batches of docs, in order. num_proc > 1 runs a process pool that reads the input only a few
    batches ahead (Pool.imap would pull a whole streamed dataset into memory)."""
    it = iter(docs)
    batches = iter(lambda: list(islice(it, docs_per_batch)), [])
    if num_proc <= 1:
        yield from (_encode_batch(b, tok) for b in batches)
        return
    import multiprocessing
    # spawn, not fork: the parent holds reader threads (datasets, tqdm) that a fork could leave locked
    with multiprocessing.get_context('spawn').Pool(num_proc, _init_worker, (tokenizer_name,)) as pool:
        pending = deque()
        for batch in batches:
            pending.append(pool.apply_async(_encode_batch, (batch,)))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def write_tokens(out_dir, tokenizer_name, splits, num_proc=1, max_tokens=None, doc_counts=None):
    """Tokenize documents into out_dir/{split}.bin for each split, then write out_dir/meta.json.

    splits: {'train': docs, 'val': docs}, each an iterable of strings (a list, a generator, `texts(dataset)`).
    Empty and whitespace-only documents are dropped (as the paper's preprocessing drops empty rows); every
    other document is followed by the end-of-text token, so a .bin file is one flat stream that train.py
    samples windows from. max_tokens caps the train split (cut at exactly that many tokens, mid-document).
    doc_counts: {split: number of documents}, the progress bar's total where docs has no len() (a generator).
    The output is a function of the documents and the tokenizer alone (num_proc does not change a byte).
    An old meta.json goes first and the new one comes last, and every file goes through atomic.atomic_write
    (a temporary name, then a rename): a crash, a kill or a full disk never leaves a half-written file, and a
    folder is either complete or has no meta.json (which readers need, and dataset_dir then prepares again).
    """
    from tqdm import tqdm
    # imported here, not at the top: data/pydocs/prepare.py imports this file before it reads the standard
    # library's docstrings, which importing more modules could change
    from atomic import atomic_write
    tok = get_tokenizer(tokenizer_name)
    meta = {'tokenizer': tokenizer_name, 'dtype': token_dtype(tok.vocab_size),
            'vocab_size': tok.vocab_size, 'eot_token': tok.eot_token}
    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(out_dir, 'meta.json')
    if os.path.isfile(meta_path):
        os.remove(meta_path)  # until the new one is written, old and new .bin files may be mixed here
    # a bar on stderr even in a log file (not a terminal): there, one line every 30 seconds instead of 10 a second
    interval = 0.1 if sys.stderr.isatty() else 30
    written = {}
    for split, docs in splits.items():
        cap = max_tokens if split == 'train' else None
        total = (doc_counts or {}).get(split) or (len(docs) if hasattr(docs, '__len__') else None)
        docs = (d for d in docs if d and not d.isspace())

        def write_bin(f):  # streams the split into atomic_write's temporary file, batch by batch
            num_docs = num_tokens = 0
            # tokens done of the cap where there is one, else documents done of their number
            bar = tqdm(desc=split, unit='tok', unit_scale=True, total=cap, mininterval=interval) if cap else \
                tqdm(desc=split, unit='doc', total=total, mininterval=interval)
            with bar:
                for ids in _encoded_batches(docs, tokenizer_name, tok, num_proc):
                    if cap is not None and num_tokens + len(ids) > cap:
                        ids = ids[:cap - num_tokens]
                    docs_in_batch = int((ids == tok.eot_token).sum())  # whole documents written
                    ids.astype(meta['dtype']).tofile(f)
                    num_docs += docs_in_batch
                    num_tokens += len(ids)
                    bar.update(len(ids) if cap else docs_in_batch)
                    if cap is not None and num_tokens >= cap:
                        break
            if num_tokens == 0:
                raise ValueError(f"the {split} split has no non-empty documents")
            written[split] = (num_docs, num_tokens)

        atomic_write(os.path.join(out_dir, f'{split}.bin'), write_bin)
    atomic_write(meta_path, json.dumps(meta, indent=2) + '\n')
    for split, (num_docs, num_tokens) in written.items():
        print(f"{split}.bin: {num_docs:,} documents, {num_tokens:,} tokens ({meta['dtype']})")
    print(f"wrote {out_dir} (tokenizer {tokenizer_name}, vocab_size {tok.vocab_size}, eot {tok.eot_token})")
    return written
