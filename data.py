"""
Token data: the one place that knows how a dataset sits on disk, how it was tokenized, and how it is written.

A dataset is a folder with `train.bin` and `val.bin` (flat token ids, documents joined by an end-of-text
token) and `meta.json` = {"tokenizer": "byte" | "gpt2" | "<hub id or tokenizer dir>", "dtype": "uint16" |
"uint32", "vocab_size": int, "eot_token": int}. Readers (train.py, measure.py, eval.py, sample.py):

    from data import dataset_dir, load_meta, load_tokens, get_tokenizer
    d = dataset_dir('pydocs')             # a name under data/ or a path; pydocs is prepared on first use
    meta = load_meta(d)
    train_ids = load_tokens(d, 'train')   # np.memmap, dtype from meta.json
    tok = get_tokenizer(meta['tokenizer']); print(tok.decode(train_ids[:100]))

Writers are the scripts `data/<name>/prepare.py`; they all go through `write_tokens` below.
"""

import json
import os
import subprocess
import sys
from collections import deque
from itertools import islice

import numpy as np

from configurator import one_line

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')  # where dataset names live
META_KEYS = ('tokenizer', 'dtype', 'vocab_size', 'eot_token')
BYTE_EOT = 256  # the byte tokenizer's end-of-text id, one past the 256 byte values
FILE_FORMATS = {'txt': 'text', 'raw': 'text', 'json': 'json', 'jsonl': 'json', 'parquet': 'parquet'}  # --data_files

# -----------------------------------------------------------------------------
# reading


def dataset_dir(dataset):
    """Folder of a dataset: a name under data/ (e.g. 'pydocs', 'wikitext') or a path (anything with a slash)."""
    is_name = '/' not in dataset and os.sep not in dataset and dataset not in ('.', '..')
    path = os.path.join(DATA_DIR, dataset) if is_name else dataset
    if os.path.isfile(os.path.join(path, 'meta.json')):
        return path
    if is_name and dataset == 'pydocs':
        # the offline default corpus builds itself in a few seconds; a subprocess keeps the ~300 stdlib
        # imports it needs (and their side effects) out of the caller, and makes its bytes independent of it
        print(f"preparing the pydocs corpus in {path} (first use, a few seconds)")
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'pydocs', 'prepare.py')
        result = subprocess.run([sys.executable, script, f'--out_dir={path}'])
        if result.returncode != 0:
            raise FileNotFoundError(f"dataset 'pydocs' could not be prepared (exit code {result.returncode}); "
                                    f"see the error above, or run python {script}")
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


def write_tokens(out_dir, tokenizer_name, splits, num_proc=1, max_tokens=None):
    """Tokenize documents into out_dir/{split}.bin for each split, then write out_dir/meta.json.

    splits: {'train': docs, 'val': docs}, each an iterable of strings (a list, a generator, `texts(dataset)`).
    Empty and whitespace-only documents are dropped (as the paper's preprocessing drops empty rows); every
    other document is followed by the end-of-text token, so a .bin file is one flat stream that train.py
    samples windows from. max_tokens caps the train split (cut at exactly that many tokens, mid-document).
    The output is a function of the documents and the tokenizer alone (num_proc does not change a byte).
    Every file goes through checkpoint.atomic_write (a temporary name, then a rename), meta.json last, so a crash
    never leaves a half-written file, and concurrent writers of the same data (DDP ranks preparing pydocs) are
    harmless.
    """
    from tqdm import tqdm
    # imported here, not at the top: checkpoint imports torch, and data/pydocs/prepare.py imports this file before
    # it reads the standard library's docstrings, which importing torch would change
    from checkpoint import atomic_write
    tok = get_tokenizer(tokenizer_name)
    meta = {'tokenizer': tokenizer_name, 'dtype': token_dtype(tok.vocab_size),
            'vocab_size': tok.vocab_size, 'eot_token': tok.eot_token}
    meta_text = json.dumps(meta, indent=2) + '\n'
    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(out_dir, 'meta.json')
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            stale = f.read() != meta_text
        if stale:
            os.remove(meta_path)  # new bins under an old meta.json (another dtype) would read as garbage
    written = {}
    for split, docs in splits.items():
        cap = max_tokens if split == 'train' else None
        docs = (d for d in docs if d and not d.isspace())

        def write_bin(f):  # streams the split into atomic_write's temporary file, batch by batch
            num_docs = num_tokens = 0
            with tqdm(desc=split, unit='tok', unit_scale=True, total=cap, disable=None) as bar:
                for ids in _encoded_batches(docs, tokenizer_name, tok, num_proc):
                    if cap is not None and num_tokens + len(ids) > cap:
                        ids = ids[:cap - num_tokens]
                    num_docs += int((ids == tok.eot_token).sum())  # whole documents written
                    ids.astype(meta['dtype']).tofile(f)
                    num_tokens += len(ids)
                    bar.update(len(ids))
                    if cap is not None and num_tokens >= cap:
                        break
            if num_tokens == 0:
                raise ValueError(f"the {split} split has no non-empty documents")
            written[split] = (num_docs, num_tokens)

        atomic_write(os.path.join(out_dir, f'{split}.bin'), write_bin)
    atomic_write(meta_path, meta_text)
    for split, (num_docs, num_tokens) in written.items():
        print(f"{split}.bin: {num_docs:,} documents, {num_tokens:,} tokens ({meta['dtype']})")
    print(f"wrote {out_dir} (tokenizer {tokenizer_name}, vocab_size {tok.vocab_size}, eot {tok.eot_token})")
    return written
