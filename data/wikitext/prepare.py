"""
Prepare WikiText-103 (raw), the paper's mid-training corpus (Salesforce/wikitext, wikitext-103-raw-v1):
train -> train.bin, validation -> val.bin.

    python data/wikitext/prepare.py                                    # GPT-2 tokens (tiktoken) -> data/wikitext/
    python data/wikitext/prepare.py --tokenizer=Qwen/Qwen3-0.6B --out_dir=data/wikitext_qwen3
    python data/wikitext/prepare.py --data_files="{'train': 'train.txt', 'validation': 'valid.txt'}"

--data_files reads a local copy instead of the hub (the hub's parquet files, the original wiki.train.raw and
wiki.valid.raw, or text/json files) through the same datasets code: only the load_dataset arguments differ.
Another tokenizer needs another --out_dir; the folder name is what train.py's --dataset takes
(data/wikitext_qwen3 -> --dataset=wikitext_qwen3).

train.py and measure.py run this script themselves on first use of --dataset=wikitext (GPT-2 tokens) or
wikitext_qwen3 (--tokenizer=Qwen/Qwen3-0.6B), one process of a torchrun job for all (data.dataset_dir). There,
the environment variable DATA_PREPARE_ARGS adds arguments: a JSON object {dataset name: [arguments]}, e.g.
local files in place of the hub (the tests give it local text files and a tokenizer folder):
    DATA_PREPARE_ARGS='{"wikitext": ["--data_files={'"'train': 'train.txt', 'validation': 'valid.txt'"'}"]}'

Preprocessing, against the official scripts (KrishnaswamyLab/LM-Dispersion midtrain_gpt2.py, midtrain_qwen3.py):
both drop empty and whitespace-only rows and tokenize without a BOS token. The official code then concatenates the
rows of each `map` batch and cuts them into blocks of context_len. Here the rows of each article (an article starts
at a top-level heading " = Title = ") are joined into one document, and the documents are written as one flat
stream, each followed by the end-of-text token; train.py samples windows from it. Inside an article the text is the
official concatenation (tokenized as one string, which GPT-2's pre-tokenizer splits the same way at row ends); the
end-of-text tokens (one per article, ~0.02% of the tokens) are the only addition.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from configurator import configure, die  # noqa: E402
from data import get_tokenizer, load_documents, texts, write_tokens  # noqa: E402

# -----------------------------------------------------------------------------
tokenizer = 'gpt2'            # 'gpt2' (tiktoken), 'byte', or a HF hub id / tokenizer folder (e.g. Qwen/Qwen3-0.6B)
out_dir = ''                  # '' = this script's folder
data_files: str | dict = ''   # local files, not the hub: {'train': ..., 'validation': ...} (.raw/.txt/.json/.parquet)
num_proc = max(1, min(8, (os.cpu_count() or 2) // 2))  # tokenizer processes
# -----------------------------------------------------------------------------


def is_title(row):
    """A top-level heading row (' = Valkyria Chronicles III = \\n'); sections are ' = = Name = = '."""
    text = row.strip()
    return text.startswith('= ') and text.endswith(' =') and not text.startswith('= =')


def articles(rows):
    """Join consecutive rows into articles; empty and whitespace-only rows are dropped."""
    article = []
    for row in rows:
        if is_title(row) and article:
            yield ''.join(article)
            article = []
        if row.strip():
            article.append(row)
    if article:
        yield ''.join(article)


if __name__ == '__main__':
    configure(globals())
    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    try:
        get_tokenizer(tokenizer)  # a bad tokenizer fails now, not after a long download
        ds = load_documents('Salesforce/wikitext', 'wikitext-103-raw-v1', data_files=data_files or None)
        if 'train' not in ds or 'validation' not in ds:
            raise ValueError(f"need a 'train' and a 'validation' split, got {', '.join(ds)} "
                             f"(e.g. --data_files=\"{{'train': 'train.txt', 'validation': 'valid.txt'}}\")")
        splits = {'train': ds['train'], 'val': ds['validation']}
        # the progress bar's totals: a quick pass over the rows (seconds), next to minutes of tokenizing
        write_tokens(out_dir, tokenizer, {k: articles(texts(v)) for k, v in splits.items()}, num_proc=num_proc,
                     doc_counts={k: sum(1 for _ in articles(texts(v))) for k, v in splits.items()})
    except (ValueError, FileNotFoundError) as e:
        die(str(e))

# Not measured here (no hub access when this was written); an estimate: WikiText-103 has 103,227,021 train and
# 217,646 validation words in 28,475 and 60 articles (Merity et al., 2016), and GPT-2's BPE makes about 1.17 tokens
# of a WikiText word (287,644 tokens for WikiText-2's 245,569-word test set), so expect about 1.2e8 train tokens
# (240 MB as uint16) and 2.5e5 val tokens.
