"""data.py, the prepare scripts and sample.py: token files and their checks, the tokenizers (byte, tiny BPEs built
here with `tokenizers`, the byte tokenizer's transformers twin), each prepare script end to end on local files
through the same datasets code as the hub, the pydocs corpus, preparation on first use (one process of a torchrun
job prepares; an interrupted one is never taken as complete), and sampling from a tiny checkpoint.

python -m pytest -q tests/test_data.py
"""
import contextlib
import io
import json
import os
import runpy
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import data
from conftest import run_in_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
           PYTHONIOENCODING="utf-8", OMP_NUM_THREADS="1")

# wikitext-103-raw style rows: " = Title = " starts an article, " = = Section = = " does not
TRAIN_ARTICLES = [
    [" = Alpha = \n", " Alpha is the first letter of the Greek alphabet ; its value is 1 .\n",
     " = = History = = \n", " It comes from the Phoenician letter aleph , “ ox ” .\n"],
    [" = Beta ( letter ) = \n", " Beta , β , is the second letter : naïve café 😀 .\n"],
    [" = Gamma = \n", " Gamma rays — γ — are energetic .\n", " = = = Usage = = = \n", " Its value is 3 .\n"],
]
VAL_ARTICLES = [[" = Delta = \n", " Delta ( Δ ) is the fourth letter .\n"]]
WEB_DOCS = ["Photosynthesis turns light into chemical energy.", "Mitochondria are the cell's power plants. ñ",
            "", "Plate tectonics moves continents — slowly. 🌍", "  \n", "The water cycle has four stages.",
            "Fractions: ½ + ¼ = ¾."]


def prepare(script, *args):
    """`python script args` run in this process (saves the interpreter and imports): (exit code, stdout, stderr)."""
    out, err, argv, code = io.StringIO(), io.StringIO(), sys.argv, 0
    sys.argv = [script, *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def wikitext_file(path, articles):
    """Rows as the hub stores them: an empty row around each heading, one whitespace-only row."""
    rows = []
    for article in articles:
        rows += ["\n", article[0], "\n"] + [r for row in article[1:] for r in (row, "\n")] + [" \n"]
    path.write_text("".join(rows), encoding="utf-8")
    return str(path)


def documents_of(ids, eot):
    """Split a token stream after each end-of-text token (the file format's definition of a document)."""
    ids = np.asarray(ids)
    ends = np.flatnonzero(ids == eot)
    assert len(ends) and ends[-1] == len(ids) - 1, "the stream must end with an end-of-text token"
    return [ids[s:e] for s, e in zip(np.r_[0, ends[:-1] + 1], ends)]


def bpe_tokenizer_dir(path, texts, pad_to=None):
    """A byte-level BPE trained on texts, saved with save_pretrained; pad_to grows the vocabulary with unused
    entries, so its eos (added after them) gets an id past 65,535."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if pad_to:
        spec = json.loads(tk.to_str())
        vocab = spec["model"]["vocab"]
        vocab.update({f"<unused{i}>": i for i in range(len(vocab), pad_to)})
        tk = Tokenizer.from_str(json.dumps(spec))
    PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>",
                            clean_up_tokenization_spaces=False).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    texts = ["".join(a) for a in TRAIN_ARTICLES + VAL_ARTICLES] + WEB_DOCS
    root = tmp_path_factory.mktemp("tokenizers")
    return bpe_tokenizer_dir(root / "small", texts), bpe_tokenizer_dir(root / "big", texts, pad_to=70_000)


def rust_ids(tokenizer_dir, text):
    """Reference encoding straight from the Rust tokenizer file, bypassing transformers and data.py."""
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json")).encode(text).ids

# -----------------------------------------------------------------------------
# tokenizers


def test_byte_tokenizer_is_utf8_and_hf_twin_agrees():
    text = "Grüße, naïve café — “quoted” 😀 日本語\n\ttabs  and  spaces , x"
    tok = data.get_tokenizer("byte")
    assert (tok.eot_token, tok.vocab_size) == (256, 257)
    assert tok.encode(text) == list(text.encode("utf-8"))
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode([72, 256, 105, 300]) == "Hi"  # end-of-text and padding ids are not text
    broken = "é".encode("utf-8")[:1] + b"ok"
    assert tok.decode(list(broken)) == broken.decode("utf-8", errors="replace")
    hf = data.hf_tokenizer("byte")
    assert hf.encode(text, add_special_tokens=False) == tok.encode(text)
    assert hf(text)["input_ids"] == tok.encode(text)  # no BOS is added
    assert hf.decode(tok.encode(text)) == text
    assert (hf.eos_token_id, hf.bos_token_id, hf.pad_token_id, len(hf)) == (256, 256, 256, 257)
    # every byte value that UTF-8 can hold (all but C0, C1, F5..FF): 1- and 2-byte characters, then a character
    # for each 3-byte lead E0..EF and each 4-byte lead F0..F4
    every = "".join(map(chr, range(0x800))) + "".join(chr(max(0x800, 0x1000 * i)) for i in range(16)) + \
        "".join(chr(0x10000 + 0x40000 * i) for i in range(4)) + chr(0x100000)
    assert len(set(every.encode("utf-8"))) == 256 - 13
    assert hf.encode(every, add_special_tokens=False) == list(every.encode("utf-8"))
    assert hf.decode(list(every.encode("utf-8"))) == every


def test_hf_tokenizer_dir(tokenizer_dirs):
    small, big = tokenizer_dirs
    text = "".join(TRAIN_ARTICLES[1])
    tok = data.get_tokenizer(small)
    assert tok.encode(text) == rust_ids(small, text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == 401 and tok.eot_token == 400  # 400 BPE entries, then the added eos
    tok = data.get_tokenizer(big)
    assert tok.vocab_size == 70_001 and tok.eot_token == 70_000
    assert data.hf_tokenizer(small).pad_token_id == 400  # pad falls back to eos


def test_tokenizer_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="could not load the Hugging Face tokenizer 'no-such/tokenizer-here'"):
        data.get_tokenizer("no-such/tokenizer-here")
    import tiktoken

    def offline(name):
        raise ConnectionError("Name or service not known")
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(ValueError, match="TIKTOKEN_CACHE_DIR") as e:
        data.get_tokenizer("gpt2")
    assert "\n" not in str(e.value)


def test_gpt2_tokenizer_when_cached():
    try:
        tok = data.get_tokenizer("gpt2")
    except ValueError:
        pytest.skip("tiktoken's gpt2 file is not cached on this machine (no internet)")
    assert (tok.eot_token, tok.vocab_size) == (50256, 50257)
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's ids, as in its vocab.json
    assert tok.encode("<|endoftext|>") != [50256]  # text stays text: only write_tokens adds separators

# -----------------------------------------------------------------------------
# token files


def test_token_dtype():
    assert [data.token_dtype(v) for v in (257, 50257, 65535, 65536)] == ["uint16"] * 4
    assert [data.token_dtype(v) for v in (65537, 70_000, 151_669, 151_936)] == ["uint32"] * 4
    for v in (65536, 65537, 151_936):  # the largest id always fits
        assert np.iinfo(data.token_dtype(v)).max >= v - 1


def write_meta(d, **meta):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "meta.json"), "w") as f:
        f.write(meta.pop("raw", None) or json.dumps({"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257,
                                                     "eot_token": 256, **meta}))
    return str(d)


def test_load_meta_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json not found"):
        data.load_meta(str(tmp_path))
    assert data.load_meta(write_meta(tmp_path / "ok")) == {"tokenizer": "byte", "dtype": "uint16",
                                                          "vocab_size": 257, "eot_token": 256}
    cases = {"json": (dict(raw="{not json"), "not valid JSON"),
             "list": (dict(raw="[1, 2]"), "expected a JSON object"),
             "key": (dict(raw='{"tokenizer": "byte", "dtype": "uint16"}'), "missing key.*vocab_size, eot_token"),
             "dtype": (dict(dtype="int32"), "dtype must be 'uint16' or 'uint32'"),
             "small": (dict(dtype="uint16", vocab_size=70_000, eot_token=69_999), "uint16 cannot hold vocab_size"),
             "eot": (dict(eot_token=257), "eot_token 257 is outside"),
             "int": (dict(vocab_size="257"), "'vocab_size' must be an integer"),
             "tok": (dict(tokenizer=""), "'tokenizer' must be a non-empty string")}
    for name, (meta, message) in cases.items():
        d = write_meta(tmp_path / name, **meta)
        with pytest.raises(ValueError, match=message) as e:
            data.load_meta(d)
        assert os.path.join(d, "meta.json") in str(e.value) and "\n" not in str(e.value)
    assert data.load_meta(write_meta(tmp_path / "big", dtype="uint32", vocab_size=151_669,
                                     eot_token=151_643))["dtype"] == "uint32"


def test_load_tokens(tmp_path):
    d = write_meta(tmp_path / "d16")
    ids = np.array([0, 255, 256, 7, 256], dtype=np.uint16)
    ids.tofile(os.path.join(d, "train.bin"))
    train = data.load_tokens(d, "train")
    assert isinstance(train, np.memmap) and train.dtype == np.uint16 and train.tolist() == ids.tolist()
    with pytest.raises(ValueError):
        train[0] = 1  # read-only
    with pytest.raises(FileNotFoundError, match="val.bin not found"):
        data.load_tokens(d, "val")
    with open(os.path.join(d, "val.bin"), "wb") as f:
        f.write(b"\x01\x02\x03")  # 3 bytes: one and a half uint16
    with pytest.raises(ValueError, match="not a whole number of uint16 tokens"):
        data.load_tokens(d, "val")
    open(os.path.join(d, "val.bin"), "wb").close()
    with pytest.raises(ValueError, match="is empty"):
        data.load_tokens(d, "val")
    d = write_meta(tmp_path / "d32", dtype="uint32", vocab_size=70_001, eot_token=70_000)
    big = np.array([70_000, 65_536, 3], dtype=np.uint32)
    big.tofile(os.path.join(d, "train.bin"))
    assert data.load_tokens(d, "train").tolist() == [70_000, 65_536, 3]
    with open(os.path.join(d, "val.bin"), "wb") as f:
        f.write(b"\x00" * 6)
    with pytest.raises(ValueError, match="not a whole number of uint32 tokens"):
        data.load_tokens(d, "val")
    with pytest.raises(FileNotFoundError, match="meta.json"):
        data.load_tokens(str(tmp_path), "train")


def test_dataset_dir_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DATA_DIR", str(tmp_path))
    (tmp_path / "mydata").mkdir()  # no prepare script anywhere for this name
    with pytest.raises(FileNotFoundError, match=r"'mydata' is not prepared.*python data/mydata/prepare.py"):
        data.dataset_dir("mydata")
    with pytest.raises(FileNotFoundError, match="'nope' is not prepared.*datasets under data/: mydata"):
        data.dataset_dir("nope")
    with pytest.raises(FileNotFoundError, match="dataset directory .*missing not found"):
        data.dataset_dir(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="has no meta.json"):
        data.dataset_dir(str(tmp_path / "mydata"))
    d = write_meta(tmp_path / "mine")
    assert data.dataset_dir("mine") == d and data.dataset_dir(d) == d
    for bad, message in (("{not json", "is not valid JSON"), ('{"wikitext": "--tokenizer=byte"}', "must be a JSON")):
        monkeypatch.setenv("DATA_PREPARE_ARGS", bad)
        with pytest.raises(ValueError, match=f"DATA_PREPARE_ARGS {message}") as e:
            data.dataset_dir("wikitext")
        assert "\n" not in str(e.value) and not (tmp_path / "wikitext").exists()  # refused before writing

# -----------------------------------------------------------------------------
# the prepare scripts


def test_pydocs_prepared_on_first_use_and_deterministic(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DATA_DIR", str(tmp_path))
    d = data.dataset_dir("pydocs")  # runs data/pydocs/prepare.py in a fresh interpreter
    assert d == str(tmp_path / "pydocs")
    assert f"preparing dataset 'pydocs' in {d} (first use" in capsys.readouterr().out
    assert sorted(os.listdir(d)) == ["meta.json", "prepare.lock", "train.bin", "val.bin"]
    assert data.load_meta(d) == {"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257, "eot_token": 256}
    # the documents again, in another interpreter with another hash seed: set order must not leak into the bytes
    listing = tmp_path / "docs.json"
    code = ("import importlib.util, json, sys; spec = importlib.util.spec_from_file_location('p', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "json.dump(m.documents(), open(sys.argv[2], 'w'))")
    subprocess.run([sys.executable, "-c", code, "data/pydocs/prepare.py", str(listing)], cwd=ROOT, check=True,
                   env=dict(ENV, PYTHONHASHSEED="12345"), timeout=120)
    docs = json.loads(listing.read_text())
    assert 300 < len(docs) and 1.5e6 < sum(len(x.encode()) for x in docs) < 3e6
    assert len(set(docs)) == len(docs)
    got = {split: [bytes(doc.astype(np.uint8)).decode("utf-8") for doc in documents_of(data.load_tokens(d, split),
                                                                                         256)]
           for split in ("train", "val")}
    held_out = set(got["val"])
    assert got["train"] == [x for x in docs if x not in held_out]  # both splits keep the corpus order
    assert got["val"] == [x for x in docs if x in held_out] and len(held_out) == round(len(docs) / 20)
    lengths = sorted(len(x.encode()) for x in docs)
    val_lengths = sorted(len(x.encode()) for x in held_out)
    assert val_lengths[0] < lengths[len(lengths) // 10] and val_lengths[-1] > lengths[-len(lengths) // 10]
    assert 0.03 < sum(val_lengths) / sum(lengths) < 0.08  # short and long documents, about 5% of the text
    assert data.dataset_dir("pydocs") == d and "preparing" not in capsys.readouterr().out  # only once


def test_wikitext_prepare_byte_two_processes(tmp_path):
    files = {"train": wikitext_file(tmp_path / "wiki.train.raw", TRAIN_ARTICLES),
             "validation": wikitext_file(tmp_path / "wiki.valid.raw", VAL_ARTICLES)}
    out = tmp_path / "out"
    # a pool of two tokenizer processes, forked from a fresh interpreter (not from this one, with its threads)
    r = subprocess.run([sys.executable, "data/wikitext/prepare.py", "--tokenizer=byte", f"--out_dir={out}",
                        f"--data_files={files!r}", "--num_proc=2"], cwd=ROOT, capture_output=True, env=ENV,
                       encoding="utf-8", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "train.bin: 3 documents" in r.stdout
    assert data.load_meta(str(out)) == {"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257, "eot_token": 256}
    for split, articles in (("train", TRAIN_ARTICLES), ("val", VAL_ARTICLES)):
        got = [bytes(doc.astype(np.uint8)).decode("utf-8") for doc in documents_of(data.load_tokens(str(out), split),
                                                                                      256)]
        assert got == ["".join(a) for a in articles]  # empty rows gone, articles whole, one eot after each


def test_wikitext_prepare_hf_tokenizer(tmp_path, tokenizer_dirs):
    small = tokenizer_dirs[0]
    files = {"train": wikitext_file(tmp_path / "train.txt", TRAIN_ARTICLES),
             "validation": wikitext_file(tmp_path / "valid.txt", VAL_ARTICLES)}
    out = tmp_path / "out"
    code, _, err = prepare("data/wikitext/prepare.py", f"--tokenizer={small}", f"--out_dir={out}",
                           f"--data_files={files!r}", "--num_proc=1")
    assert code == 0, err
    meta = data.load_meta(str(out))
    assert meta == {"tokenizer": small, "dtype": "uint16", "vocab_size": 401, "eot_token": 400}
    for split, articles in (("train", TRAIN_ARTICLES), ("val", VAL_ARTICLES)):
        expected = [i for a in articles for i in rust_ids(small, "".join(a)) + [400]]
        assert data.load_tokens(str(out), split).tolist() == expected


def jsonl(path, docs):
    path.write_text("".join(json.dumps({"text": x, "id": i}) + "\n" for i, x in enumerate(docs)), encoding="utf-8")
    return str(path)


def test_fineweb_prepare_uint32(tmp_path, tokenizer_dirs):
    big = tokenizer_dirs[1]
    out = tmp_path / "out"
    code, _, err = prepare("data/fineweb_edu/prepare.py", f"--tokenizer={big}", f"--out_dir={out}", "--num_proc=1",
                           f"--data_files={jsonl(tmp_path / 'web.jsonl', WEB_DOCS)}", "--val_docs=2")
    assert code == 0, err
    assert data.load_meta(str(out)) == {"tokenizer": big, "dtype": "uint32", "vocab_size": 70_001,
                                        "eot_token": 70_000}
    for split, docs in (("val", WEB_DOCS[:2]), ("train", [x for x in WEB_DOCS[2:] if x.strip()])):
        expected = [i for x in docs for i in rust_ids(big, x) + [70_000]]
        assert data.load_tokens(str(out), split).tolist() == expected  # 70000 survives: uint16 would wrap it
    tok = data.get_tokenizer(big)
    assert [tok.decode(x) for x in documents_of(data.load_tokens(str(out), "train"), 70_000)] == \
        [x for x in WEB_DOCS[2:] if x.strip()]


def test_fineweb_prepare_caps_streaming(tmp_path):
    files = jsonl(tmp_path / "web.jsonl", WEB_DOCS)
    train_docs = [x for x in WEB_DOCS[2:] if x.strip()]
    stream = [i for x in train_docs for i in list(x.encode("utf-8")) + [256]]
    out = tmp_path / "capped"
    code, _, err = prepare("data/fineweb_edu/prepare.py", "--tokenizer=byte", f"--out_dir={out}",
                           f"--data_files={files}", "--val_docs=2", "--max_tokens=60", "--streaming=True",
                           "--num_proc=1")
    assert code == 0, err
    assert data.load_tokens(str(out), "train").tolist() == stream[:60]  # cut at exactly max_tokens
    assert data.load_tokens(str(out), "val").tolist() == [i for x in WEB_DOCS[:2] for i in list(x.encode()) + [256]]
    out = tmp_path / "few"
    code, _, err = prepare("data/fineweb_edu/prepare.py", "--tokenizer=byte", f"--out_dir={out}",
                           f"--data_files={files}", "--val_docs=2", "--num_docs=2", "--num_proc=1")
    assert code == 0, err  # train: rows 2 and 3, an empty one and one document
    assert data.load_tokens(str(out), "train").tolist() == list(WEB_DOCS[3].encode()) + [256]


def test_prepare_errors_are_one_line_and_write_nothing(tmp_path):
    out = tmp_path / "out"
    r = run_in_process("data/wikitext/prepare.py", "--tokenizer=byte", f"--out_dir={out}")  # the hub is offline
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("error: could not load Salesforce/wikitext (wikitext-103-raw-v1)")
    assert "--data_files" in last and not out.exists()
    code, _, err = prepare("data/fineweb_edu/prepare.py", "--tokenizer=no-such/tokenizer-here", f"--out_dir={out}",
                           f"--data_files={jsonl(tmp_path / 'web.jsonl', WEB_DOCS)}")
    assert code == 1 and err.startswith("error: could not load the Hugging Face tokenizer") and err.count("\n") == 1
    code, _, err = prepare("data/fineweb_edu/prepare.py", "--tokenizer=byte", f"--out_dir={out}",
                           "--data_files=web.csv")
    assert code == 1 and err.startswith("error: --data_files: expected files of one format") and err.count("\n") == 1
    code, _, err = prepare("data/fineweb_edu/prepare.py", "--max_tokens=lots")
    assert code == 2 and "--max_tokens expects int" in err
    assert not out.exists()


def test_write_tokens_failure_leaves_no_partial_files(tmp_path, tokenizer_dirs):
    out = tmp_path / "out"
    written = data.write_tokens(str(out), "byte", {"train": ["ab", " ", "c"], "val": ["é"]})
    assert written == {"train": (2, 5), "val": (1, 3)}  # 'ab' eot 'c' eot; the two UTF-8 bytes of é, eot
    assert (out / "meta.json").read_text() == json.dumps(
        {"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257, "eot_token": 256}, indent=2) + "\n"
    assert data.load_tokens(str(out), "train").tolist() == [97, 98, 256, 99, 256]
    # another tokenizer, and a val split that fails: train.bin is new, val.bin still the old one, so the old
    # meta.json (which no longer describes train.bin) is gone, and no temporary file is left behind
    small = tokenizer_dirs[0]
    with pytest.raises(ValueError, match="the val split has no non-empty documents"):
        data.write_tokens(str(out), small, {"train": ["Alpha beta"], "val": ["", "  \n"]})
    assert sorted(os.listdir(out)) == ["train.bin", "val.bin"]
    assert np.fromfile(out / "train.bin", dtype=np.uint16).tolist() == rust_ids(small, "Alpha beta") + [400]
    assert np.fromfile(out / "val.bin", dtype=np.uint16).tolist() == list("é".encode()) + [256]


# -----------------------------------------------------------------------------
# preparation on first use: one process of a job prepares, an interrupted preparation is never taken as complete


def wikitext_source(tmp_path, copies=20):
    """WikiText-style files with enough tokens for a few training windows: the test articles, retitled."""
    def retitled(articles, n):
        return [[a[0].replace(" = \n", f" {i} = \n"), *a[1:]] for i in range(n) for a in articles]
    train, val = retitled(TRAIN_ARTICLES, copies), retitled(VAL_ARTICLES, copies // 2)
    return {"train": wikitext_file(tmp_path / "wiki.train.raw", train),
            "validation": wikitext_file(tmp_path / "wiki.valid.raw", val)}


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory, tokenizer_dirs):
    """A tiny random GPT-2 saved with save_pretrained, with the small BPE (vocabulary 401) saved next to it."""
    import shutil
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    d = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=401, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=400,
                               eos_token_id=400)).save_pretrained(d)
    for name in os.listdir(tokenizer_dirs[0]):
        shutil.copy(os.path.join(tokenizer_dirs[0], name), d)
    return str(d)


def test_wikitext_prepared_once_on_first_use_under_torchrun(tmp_path, tiny_gpt2_dir):
    files = wikitext_source(tmp_path)
    args = [f"--tokenizer={tiny_gpt2_dir}", f"--data_files={files!r}", "--num_proc=1"]
    folder = tmp_path / "data" / "wikitext"  # a path ending in the dataset's name: prepared there, not in data/
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py",
           "config/midtrain_gpt2_disp.py", f"--init_from={tiny_gpt2_dir}", f"--dataset={folder}",
           f"--out_dir={tmp_path / 'out'}", "--device=cpu", "--dtype=float32", "--compile=False", "--block_size=16",
           "--batch_size=2", "--gradient_accumulation_steps=2", "--max_tokens=0", "--max_iters=2",
           "--eval_interval=2", "--eval_iters=2", "--eval_tasks=''", "--condensation_samples=2", "--log_interval=1"]
    env = dict(ENV, DATA_PREPARE_ARGS=json.dumps({"wikitext": args}))
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count(f"preparing dataset 'wikitext' in {folder} (first use; DATA_PREPARE_ARGS adds") == 1
    assert r.stdout.count("train.bin: 60 documents") == 1  # one preparation: the articles, counted once
    assert r.stderr.count("train: 100%") == 1 and r.stderr.count("60/60") == 1  # one progress bar, to its total
    with open(tmp_path / "out" / "metrics.jsonl") as f:
        assert [m["step"] for m in map(json.loads, f) if "train_loss" in m] == [1, 2]
    # the same bytes as a plain preparation in one process, and nothing else left in the folder
    plain = tmp_path / "plain"
    code, _, err = prepare("data/wikitext/prepare.py", *args, f"--out_dir={plain}")
    assert code == 0, err
    assert sorted(os.listdir(folder)) == ["meta.json", "prepare.lock", "train.bin", "val.bin"]
    for name in ("train.bin", "val.bin", "meta.json"):
        assert (folder / name).read_bytes() == (plain / name).read_bytes()
    assert data.load_meta(str(folder))["tokenizer"] == tiny_gpt2_dir


# a writer that stops mid-write: it announces the temporary file once a batch is written, then hangs
KILLED_WRITER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from data import write_tokens

def docs():
    for i in range(300):  # more than one batch (256 documents): the first one reaches the file
        yield f"document {i}"
    open(sys.argv[3], "w").close()
    time.sleep(600)

write_tokens(sys.argv[2], "byte", {"train": docs(), "val": ["v"]})
"""


def test_interrupted_preparation_is_never_complete_and_is_redone(tmp_path, monkeypatch):
    folder = tmp_path / "wikitext"
    ready = tmp_path / "ready"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, ROOT, str(folder), str(ready)], env=ENV)
    try:
        for _ in range(600):
            if ready.exists() or writer.poll() is not None:
                break
            time.sleep(0.05)
        assert ready.exists(), "the writer did not get to its first batch"
        os.kill(writer.pid, signal.SIGKILL)  # kill -9 in the middle of train.bin
    finally:
        writer.kill()
        writer.wait()
    left = os.listdir(folder)
    assert len(left) == 1 and left[0].startswith("train.bin.") and left[0].endswith(".tmp")  # only the temporary
    assert os.path.getsize(folder / left[0]) > 0
    with pytest.raises(FileNotFoundError):
        data.load_meta(str(folder))
    # the next use prepares again, and removes what the killed writer left
    files = wikitext_source(tmp_path, copies=2)
    monkeypatch.setenv("DATA_PREPARE_ARGS", json.dumps({"wikitext": ["--tokenizer=byte", f"--data_files={files!r}",
                                                                     "--num_proc=1"]}))
    assert data.dataset_dir(str(folder)) == str(folder)
    assert sorted(os.listdir(folder)) == ["meta.json", "prepare.lock", "train.bin", "val.bin"]
    assert len(documents_of(data.load_tokens(str(folder), "train"), 256)) == 6
    # Ctrl-C while writing val.bin, over that complete folder: meta.json goes first, and no temporary is left
    def interrupted():
        yield "v"
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        data.write_tokens(str(folder), "byte", {"train": ["new"], "val": interrupted()})
    assert sorted(os.listdir(folder)) == ["prepare.lock", "train.bin", "val.bin"]
    with pytest.raises(FileNotFoundError, match="meta.json not found"):
        data.load_tokens(str(folder), "train")


def test_waiting_processes_read_the_files_or_fail_with_the_preparer(tmp_path):
    import fcntl
    import threading
    folder = tmp_path / "wikitext"
    folder.mkdir()

    def waiter_outcome(finish):
        """Hold the lock as a preparing process does, start a waiter, finish(), release: what the waiter got."""
        outcome = []

        def wait():
            try:  # a script that does not exist: a waiter must never prepare a second time
                outcome.append(data.prepare_on_first_use("wikitext", str(folder), "no-such-script.py", [], "test"))
            except FileNotFoundError as e:
                outcome.append(e)
        with open(folder / "prepare.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.3)
            assert waiter.is_alive() and not outcome  # blocked on the lock
            finish()
        waiter.join(10)
        return outcome[0]

    died = waiter_outcome(lambda: None)  # the preparer stops without meta.json
    assert isinstance(died, FileNotFoundError) and "stopped before the end" in str(died)
    assert waiter_outcome(lambda: write_meta(folder)) is None  # the preparer finishes: the waiter just returns


# -----------------------------------------------------------------------------
# sample.py


def tiny_checkpoint(path, block_size=32):
    torch = pytest.importorskip("torch")
    model = pytest.importorskip("model")
    from dataclasses import asdict
    torch.manual_seed(0)
    config = model.GPTConfig(block_size=block_size, vocab_size=257, n_layer=2, n_head=2, n_embd=32)
    gpt = model.GPT(config).eval()
    torch.save({"arch": "gpt", "model_args": asdict(config), "model": gpt.state_dict(), "optimizer": None,
                "step": 7, "config": {}, "data_meta": {"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257,
                                                       "eot_token": 256}, "rng": None, "data_position": 0}, path)
    return gpt


def test_sample_greedy_matches_hf_generate(tmp_path):
    torch = pytest.importorskip("torch")
    from hf_io import to_hf
    gpt = tiny_checkpoint(tmp_path / "ckpt.pt")
    prompt = "Héllo "
    r = run_in_process("sample.py", f"--ckpt={tmp_path}", f"--start={prompt}", "--num_samples=2",
                       "--max_new_tokens=20", "--temperature=0", "--device=cpu")
    assert r.returncode == 0, r.stderr
    hf = to_hf(gpt)
    x = torch.tensor([list(prompt.encode())])
    ids = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=20, do_sample=False, pad_token_id=0)
    expected = data.get_tokenizer("byte").decode(ids[0].tolist())
    out = r.stdout
    assert out.count(expected + "\n---------------\n") == 2  # greedy: both samples are HF's greedy continuation


def test_sample_generate_slides_past_context_and_top_k_one_is_greedy(tmp_path):
    torch = pytest.importorskip("torch")
    import sample
    gpt = tiny_checkpoint(tmp_path / "ckpt.pt", block_size=8)
    x = torch.tensor([[1, 2, 3]])
    greedy = sample.generate(gpt, x, 12, temperature=0)
    assert greedy.shape == (1, 15)
    for t in range(3, 15):  # each new token is the argmax given the last block_size tokens before it
        context = greedy[:, max(0, t - 8):t]
        assert greedy[0, t].item() == gpt(context)[0][0, -1].argmax().item()
    torch.manual_seed(1)
    assert torch.equal(sample.generate(gpt, x, 12, temperature=0.7, top_k=1), greedy)
    torch.manual_seed(1)
    a = sample.generate(gpt, x, 12, temperature=1.0, top_k=0, vocab_size=256)
    torch.manual_seed(1)
    b = sample.generate(gpt, x, 12, temperature=1.0, top_k=0, vocab_size=256)
    assert torch.equal(a, b) and a[0, 3:].max().item() < 256  # seeded, and never past the tokenizer's vocabulary
