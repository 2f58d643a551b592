"""
Prepare FineWeb-Edu for pre-training from scratch: by default `codelion/fineweb-edu-1B`, the 1B-token sample
the paper's controlled pre-training study (the MLP-width sweep, config/pretrain_gpt2_mlp*.py) trained on, as the
authors' pretrain_toy_gpt2.py (KrishnaswamyLab/LM-Dispersion) loads it.

    python data/fineweb_edu/prepare.py                                     # GPT-2 tokens -> data/fineweb_edu/
    python data/fineweb_edu/prepare.py --streaming=True --max_tokens=100_000_000     # only the first 100M tokens
    python data/fineweb_edu/prepare.py --hub_dataset=HuggingFaceFW/fineweb-edu --hub_config=sample-10BT \
        --streaming=True --max_tokens=2_000_000_000 --out_dir=data/fineweb_edu_10bt
    python data/fineweb_edu/prepare.py --data_files="['part0.parquet', 'part1.parquet']" --tokenizer=byte

The dataset has a train split only: its first `val_docs` documents become val.bin and the following ones
train.bin, up to `num_docs` documents and `max_tokens` tokens (train.bin then ends mid-document at exactly
max_tokens). With --streaming=True the hub is read lazily, so a capped run downloads only what it keeps.
--data_files reads local text/json/parquet files with a `text` column through the same datasets code.
Every document is followed by the end-of-text token.

train.py and measure.py run this script themselves, with its defaults, on first use of --dataset=fineweb_edu
(GPT-2 tokens) or fineweb_edu_qwen3 (--tokenizer=Qwen/Qwen3-0.6B), one process of a torchrun job for all
(data.dataset_dir). There, the environment variable DATA_PREPARE_ARGS adds arguments: a JSON object {dataset name:
[arguments]}, e.g. local files in place of the hub, or a cap:
    DATA_PREPARE_ARGS='{"fineweb_edu": ["--data_files=/data/fineweb/part0.parquet", "--max_tokens=100_000_000"]}'
"""

import os
import sys
from itertools import islice

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from configurator import configure, die  # noqa: E402
from data import get_tokenizer, load_documents, texts, write_tokens  # noqa: E402

# -----------------------------------------------------------------------------
tokenizer = 'gpt2'                      # 'gpt2' (tiktoken), 'byte', or a HF hub id / tokenizer folder
out_dir = ''                            # '' = this script's folder
hub_dataset = 'codelion/fineweb-edu-1B'
hub_config = ''                         # e.g. 'sample-10BT' for HuggingFaceFW/fineweb-edu
data_files: str | list | dict = ''      # local files instead of the hub: a path, a list, or {'train': ...}
streaming = False                       # read the hub lazily instead of downloading the whole dataset first
max_tokens = 0                          # cap on train.bin tokens (0 = no cap)
num_docs = 0                            # cap on train documents (0 = no cap)
val_docs = 1000                         # the first documents, held out as val.bin
num_proc = max(1, min(8, (os.cpu_count() or 2) // 2))  # tokenizer processes
# -----------------------------------------------------------------------------

if __name__ == '__main__':
    configure(globals())
    if val_docs < 1 or max_tokens < 0 or num_docs < 0:
        die(f"need val_docs >= 1, max_tokens >= 0, num_docs >= 0 (got {val_docs}, {max_tokens}, {num_docs})", 2)
    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    try:
        get_tokenizer(tokenizer)  # a bad tokenizer fails now, not after a long download
        ds = load_documents(hub_dataset, hub_config or None, data_files=data_files or None, streaming=streaming)
        if 'train' not in ds:
            raise ValueError(f"need a 'train' split, got {', '.join(ds)}")
        docs = texts(ds['train'])  # one iterator: val takes the first val_docs documents, train the rest
        val = list(islice(docs, val_docs))
        train = islice(docs, num_docs) if num_docs else docs
        rows = getattr(ds['train'], 'num_rows', None)  # the progress bar's total (unknown when streaming)
        train_docs = rows and max(0, min(rows - val_docs, num_docs or rows))
        write_tokens(out_dir, tokenizer, {'train': train, 'val': val}, num_proc=num_proc,
                     max_tokens=max_tokens or None, doc_counts={'train': train_docs})
    except (ValueError, FileNotFoundError) as e:
        die(str(e))

# Not measured here (no hub access when this was written). codelion/fineweb-edu-1B holds about 1e9 GPT-2 tokens
# (its name); uncapped, train.bin is then about 2 GB (uint16) and val.bin (1000 documents) roughly 1e6 tokens.
