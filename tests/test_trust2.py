"""Trust, beyond checkpoints: token ids a model has no embedding for, output paths of the wrong kind, results that a
failed write or a later measurement would lose, run files and condensation.json files others hand us, and the
temporary files of writes that were killed. Each refusal is one line, a non-zero exit (2 for a usage error), with
nothing written and no traceback; in-process where a subprocess would prove nothing more.

OMP_NUM_THREADS=1 python -m pytest -q tests/test_trust2.py
"""
import dataclasses
import errno
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import time

import pytest
import torch

import atomic
from conftest import run_in_process
from test_train import ROOT, TINY, data_dir  # noqa: F401 (data_dir: a fixture)
from test_trust import ENV, assert_one_line_error, run, snapshot, task_dir  # noqa: F401 (task_dir: a fixture)


def run_script(script, *args):
    """A script's command line in this process with fresh module globals (runpy), as `python script args`."""
    old = sys.argv
    sys.argv = [script, *map(str, args)]
    try:
        runpy.run_path(os.path.join(ROOT, script), run_name='__main__')
    finally:
        sys.argv = old


def refused(capsys, script, *args, code=1):
    """Run a script in this process expecting a refusal: its exit code and one `error: ...` line, returned."""
    with pytest.raises(SystemExit) as e:
        run_script(script, *args)
    assert e.value.code == code, e.value.code
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("error")]  # not tqdm's progress bar
    assert "Traceback" not in err and len(lines) == 1 and err.strip().splitlines()[-1] == lines[0], err[-2000:]
    return lines[0]


def tree(folder):
    """{relative path: bytes} of every file below folder: equal before and after means nothing was touched."""
    return {os.path.relpath(os.path.join(d, n), folder): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(folder) for n in names}


def make_ckpt(folder, data_dir, vocab_size=257, seed=0, step=1):
    """folder/ckpt.pt: a GPT of vocab_size tokens whose data is byte-tokenized (data_meta of the byte tokenizer)."""
    from model import GPT, GPTConfig
    torch.manual_seed(seed)
    cfg = GPTConfig(block_size=32, vocab_size=vocab_size, n_layer=2, n_head=2, n_embd=16)
    os.makedirs(folder, exist_ok=True)
    torch.save({'arch': 'gpt', 'model_args': dataclasses.asdict(cfg), 'model': GPT(cfg).state_dict(), 'step': step,
                'config': {'dataset': str(data_dir), 'seed': 1},
                'data_meta': dict(tokenizer='byte', dtype='uint16', vocab_size=257, eot_token=256)},
               os.path.join(folder, 'ckpt.pt'))
    return str(folder)


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory, data_dir):
    """A checkpoint whose model has 50 token ids while its data_meta names the byte tokenizer (257): every byte
    above 49, and end-of-text (256), has no embedding."""
    return make_ckpt(tmp_path_factory.mktemp("small_vocab"), data_dir, vocab_size=50)

# -----------------------------------------------------------------------------
# inputs beyond the model: which ids, which vocabulary, which tokenizer


def test_sample_start_beyond_the_vocabulary(small_vocab, capsys):
    line = refused(capsys, "sample.py", f"--ckpt={small_vocab}", "--device=cpu", "--start=hi", "--max_new_tokens=2")
    assert "--start has token ids 104, 105 (tokenizer 'byte')" in line and "vocabulary of 50 (ids 0-49)" in line
    line = refused(capsys, "sample.py", f"--ckpt={small_vocab}", "--device=cpu", "--max_new_tokens=2")  # '': eot
    assert "the end-of-text token (an empty --start) has token id 256" in line and "vocabulary of 50" in line


@pytest.mark.parametrize("source", ["text_file", "dataset"])
def test_measure_windows_beyond_the_vocabulary(source, small_vocab, data_dir, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("some words of text\n" * 50)
    where = {"text_file": f"--text_file={text}", "dataset": f"--dataset={data_dir}"}[source]
    line = refused(capsys, "measure.py", f"--ckpt={small_vocab}", where, "--seq_len=16", "--num_samples=2",
                   "--min_words=5", f"--out_dir={tmp_path / 'm'}")
    assert "(tokenizer 'byte'), beyond the model's vocabulary of 50 (ids 0-49)" in line, line
    assert ("the text, tokenized, has token ids" if source == "text_file" else "its val.bin has token id") in line
    assert not (tmp_path / "m").exists()


def test_eval_tokenizer_beyond_the_vocabulary(small_vocab, tmp_path, task_dir, capsys):
    line = refused(capsys, "eval.py", f"--ckpt={small_vocab}", "--tasks=tiny_mc", f"--include_path={task_dir}",
                   "--device=cpu", f"--out={tmp_path / 'e.json'}")
    assert ("the tokenizer (257 tokens) has token ids 50, 51, 52, 53, 54 (+202 more) (tokenizer 'byte')" in line
            and "vocabulary of 50" in line), line
    assert not (tmp_path / "e.json").exists()


def test_eval_checks_every_id_of_the_tokenizer_not_only_its_length():
    """A tokenizer whose added token sits at an id past the model's vocabulary, though it has fewer tokens than the
    model: its length alone would pass."""
    from eval import prepare_hf
    from tokenizers import Tokenizer, models
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    model = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2))
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({'a': 0, 'b': 1, '<eos>': 30},
                                                                              unk_token='a')), eos_token='<eos>')
    assert len(tok) < 20
    with pytest.raises(ValueError, match=r"has token id 30 .* vocabulary of 20 \(ids 0-19\)"):
        prepare_hf(model, tok)


def test_train_data_beyond_the_model(tmp_path, data_dir):
    from transformers import GPT2Config, GPT2LMHeadModel
    GPT2LMHeadModel(GPT2Config(vocab_size=200, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        tmp_path / "hf")
    r = run("train.py", f"--dataset={data_dir}", f"--out_dir={tmp_path / 'out'}", *TINY, "--max_iters=2",
            f"--init_from={tmp_path / 'hf'}")
    assert_one_line_error(r, "token ids reach 256 (tokenizer 'byte', vocab_size 257 in its meta.json)",
                          "the model's vocabulary of 200 ids (0-199)")
    assert os.listdir(tmp_path / "out") == ["train.lock"]

# -----------------------------------------------------------------------------
# outputs of the wrong kind are found before the work


@pytest.fixture
def places(tmp_path):
    """A file and a folder that an output key could wrongly name, and a path below the file."""
    (tmp_path / "file").write_text("someone's file")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "theirs.txt").write_text("someone's file")
    return tmp_path / "file", tmp_path / "folder", tmp_path / "file" / "below"


def test_measure_and_tables_refuse_outputs_of_the_wrong_kind(places, small_vocab, data_dir, tmp_path, capsys):
    file, folder, below = places
    before = tree(tmp_path)
    ckpt = make_ckpt(tmp_path / "run", data_dir)
    args = [f"--ckpt={ckpt}", f"--dataset={data_dir}", "--seq_len=16", "--num_samples=2"]
    assert refused(capsys, "measure.py", *args, f"--out_dir={file}", code=2).endswith(
        f"--out_dir={file} exists and is not a folder")
    assert refused(capsys, "measure.py", *args, f"--out_dir={below}", code=2).endswith(
        f"{file} is a file, not a folder")
    assert refused(capsys, "measure.py", f"--compare={ckpt}", f"--out_dir={file}", code=2).endswith(
        "exists and is not a folder")
    run_file = tmp_path / "r.json"
    run_file.write_text(json.dumps({"seed": 1, "results": {"piqa": {"acc,none": 0.5}}}))
    assert refused(capsys, "tables.py", run_file, f"--table_out={folder}", code=2).endswith(
        f"--table_out={folder} is a folder; it names a file")
    assert refused(capsys, "tables.py", run_file, f"--table_out={below}/t.md", code=2).endswith(
        "is a file, not a folder")
    after = tree(tmp_path)
    assert {k: v for k, v in after.items() if k not in ("run/ckpt.pt", "r.json")} == before


def test_eval_export_train_bench_refuse_outputs_of_the_wrong_kind(places, small_vocab, tmp_path, data_dir, capsys):
    file, folder, below = places
    before = snapshot(folder), file.read_text()
    assert refused(capsys, "eval.py", f"--ckpt={small_vocab}", f"--out={folder}", code=2).endswith(
        f"--out={folder} is a folder; it names a file")
    runs = tmp_path / "runs"
    make_ckpt(runs / "a", data_dir)
    assert refused(capsys, "eval.py", f"--ckpt={runs}", f"--out={below}", code=2).endswith(
        f"{file} is a file, not a folder")
    assert refused(capsys, "export.py", f"--ckpt={small_vocab}", f"--out_dir={below}", code=2).endswith(
        f"{file} is a file, not a folder")
    assert refused(capsys, "train.py", f"--dataset={data_dir}", f"--out_dir={file}", *TINY, "--max_iters=2",
                   code=2).endswith(f"--out_dir={file} exists and is not a folder")
    assert refused(capsys, "bench.py", f"--json={folder}", "--steps=1", "--repeats=1", "--warmup=1",
                   code=2).endswith("is a folder; it names a file")
    assert (snapshot(folder), file.read_text()) == before

# -----------------------------------------------------------------------------
# a failed write at the end keeps what was computed


def no_space_for(monkeypatch, name):
    """os.replace fails with ENOSPC for the temporary file of `name` (a full disk as the file is finished)."""
    real = os.replace

    def replace(src, dst, *a, **k):
        if os.path.basename(str(dst)) == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *a, **k)
    monkeypatch.setattr(os, "replace", replace)


def rescued_file(line):
    m = re.search(r"its content is in (\S+) instead", line)
    assert m, line
    return m[1]


def test_measure_keeps_its_numbers_when_condensation_json_cannot_be_written(data_dir, tmp_path, monkeypatch,
                                                                          capsys):
    ckpt = make_ckpt(tmp_path / "run", data_dir)
    monkeypatch.chdir(tmp_path)
    no_space_for(monkeypatch, "condensation.json")
    out = tmp_path / "m"
    line = refused(capsys, "measure.py", f"--ckpt={ckpt}", f"--dataset={data_dir}", "--seq_len=16",
                   "--num_samples=2", f"--out_dir={out}")
    assert f"could not write {out}/condensation.json (OSError: [Errno 28] No space left on device)" in line
    kept = rescued_file(line)
    assert os.path.dirname(kept) == str(tmp_path) and os.path.basename(kept).startswith("condensation-")
    record = json.load(open(kept))
    assert record["name"] == "run" and len(record["mean_cossim"]) == 3 and record["num_samples"] == 2
    assert not [n for n in os.listdir(out) if n.startswith("condensation.json")]  # no temporary either


def test_tables_keeps_the_table_when_it_cannot_be_written(tmp_path, monkeypatch, capsys):
    import tables
    run_file = tmp_path / "r.json"
    run_file.write_text(json.dumps({"seed": 1, "results": {"piqa": {"acc,none": 0.5}}}))
    monkeypatch.chdir(tmp_path)
    no_space_for(monkeypatch, "t.md")
    with pytest.raises(SystemExit) as e:
        tables.main([str(run_file)], table_out=str(tmp_path / "out" / "t.md"))
    assert e.value.code == 1
    captured = capsys.readouterr()
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith(f"error: could not write {tmp_path}/out/t.md (OSError: [Errno 28]")
    assert open(rescued_file(line)).read() == captured.out  # the table printed is the table kept


def test_atomic_write_rescues_text_and_bytes_but_never_replaces_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data-x.json").write_text("a user's file")
    gone = tmp_path / "gone" / "data.json"
    with pytest.raises(OSError, match="could not write .*gone/data.json") as e:
        atomic.atomic_write(str(gone), '{"a": 1}', rescue=True)
    assert json.load(open(rescued_file(str(e.value)))) == {"a": 1}
    with pytest.raises(OSError) as e:
        atomic.atomic_write(str(gone), b"\x00\x01", rescue=True)
    assert open(rescued_file(str(e.value)), "rb").read() == b"\x00\x01"
    with pytest.raises(FileNotFoundError):  # without rescue: the plain error, nothing kept
        atomic.atomic_write(str(gone), "x")
    assert (tmp_path / "data-x.json").read_text() == "a user's file" and len(os.listdir(tmp_path)) == 3

# -----------------------------------------------------------------------------
# a results folder keeps the runs measured there before


def test_measure_keeps_the_runs_of_other_models(data_dir, tmp_path, capsys, monkeypatch):
    import figures
    a, b = make_ckpt(tmp_path / "a", data_dir, seed=1), make_ckpt(tmp_path / "b", data_dir, seed=2)
    out = tmp_path / "m"
    common = [f"--dataset={data_dir}", "--seq_len=16", "--num_samples=2", f"--out_dir={out}"]
    draw = figures.write_figures
    monkeypatch.setattr(figures, "write_figures", lambda *a, **k: None)  # drawn by the second run alone (below)
    run_script("measure.py", f"--ckpt={a}", *common)
    first = json.load(open(out / "condensation.json"))
    capsys.readouterr()
    monkeypatch.setattr(figures, "write_figures", draw)
    run_script("measure.py", f"--ckpt={b}", *common)  # another model, the same folder: the figures of both
    monkeypatch.setattr(figures, "write_figures", lambda *a, **k: None)
    printed = capsys.readouterr().out
    assert "keeps the 1 run(s) measured there before: a" in printed and "(2 runs, 1 of them from before)" in printed
    runs = json.load(open(out / "condensation.json"))["runs"]
    assert runs[0] == first and runs[1]["name"] == "b" and runs[1]["mean_cossim"] != first["mean_cossim"]
    with open(out / "condensation.csv") as f:
        assert [row.split(",")[0] for row in f.read().splitlines()[1:]] == ["a", "b"]
    assert {"heatmap_a.png", "heatmap_b.png", "last_n.png"} <= set(os.listdir(out))
    run_script("measure.py", f"--ckpt={a}", *common)  # measured again with the same settings: kept as it was
    assert "kept a: measured before" in capsys.readouterr().out
    assert json.load(open(out / "condensation.json"))["runs"] == runs
    run_script("measure.py", f"--ckpt={a}", *common, "--num_samples=3")  # other settings: one more measurement
    again = json.load(open(out / "condensation.json"))["runs"]
    assert again[:2] == runs and again[2]["name"] == "a" and again[2]["num_samples"] == 3

# -----------------------------------------------------------------------------
# files others hand us: one line naming the file and the field


GOOD_RUN = {"label": "L_train", "seed": 1, "config": {"train_config": {"reg": "none", "seed": 1}},
            "results": {"piqa": {"acc,none": 0.61, "acc_stderr,none": "N/A"}, "arc_easy": {"acc,none": 0.4}},
            "history": [{"step": 0, "results": {"piqa": {"acc,none": 0.5}, "arc_easy": {"acc,none": 0.3}}},
                        {"step": 4, "results": {"piqa": {"acc,none": 0.61}, "arc_easy": {"acc,none": 0.4}}}]}


def spoil(field):
    """GOOD_RUN with one field of the wrong shape -> (the run, the words the error must say)."""
    run = json.loads(json.dumps(GOOD_RUN))
    if field == "task":
        run["results"]["piqa"] = 0.61
        return run, "results['piqa'] is a float, not a dict of metrics"
    if field == "text":
        run["results"]["piqa"]["acc,none"] = "0.61"
        return run, "results['piqa']['acc,none'] is '0.61', not a number"
    if field == "config":
        run["config"] = ["reg", "none"]
        return run, "'config' is a list, not a dict"
    if field == "train_config":
        run["config"] = {"train_config": {"reg": "dispersion", "reg_coeff": "0.5"}}
        del run["label"]
        return run, "the training config (config[train_config]) does not read as one"
    if field == "history":
        run["history"][1] = [4, {"piqa": 0.6}]
        return run, "'history' is not a list of evaluations"
    if field == "history_task":
        run["history"][0]["results"]["arc_easy"] = {"acc,none": None}
        return run, "history[0]['results']['arc_easy']['acc,none'] is None, not a number"
    if field == "seed":
        run["seed"] = [1]
        return run, "'seed' is [1], not an integer"
    run["group_subtasks"] = "mmlu"
    return run, "'group_subtasks' is not a dict of lists of task names"


SPOILED = ["task", "text", "config", "train_config", "history", "history_task", "seed", "group_subtasks"]


@pytest.mark.parametrize("field", SPOILED)
def test_a_malformed_run_file_is_one_line_naming_file_and_field(field, tmp_path, capsys):
    import tables
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(GOOD_RUN))
    run, words = spoil(field)
    bad.write_text(json.dumps(run))
    tables.main([str(good)])  # the control: the good file makes a table
    assert "| L_train | 1 |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        tables.main([str(good), str(bad)])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: ") and words in err[0], err


def test_eval_table_reads_run_files_as_tables_does(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spoil("text")[0]))
    assert refused(capsys, "eval.py", "--table", bad).endswith(f"{bad}: results['piqa']['acc,none'] is '0.61', "
                                                              "not a number")


def measured(**changes):
    run = {"name": "a", "step": 4, "n_layers": 2, "num_samples": 2, "seq_len": 16, "mean_cossim": [0.1, 0.5, 0.9],
           "spearman": 1.0, "kendall": 1.0, "mean_last_n": [0.9, 0.7, 0.5], "histograms": [[0.5] * 128] * 3,
           "source": "out/a", "n_params": 1000}
    run.update(changes)
    return {k: v for k, v in run.items() if v is not ...}


@pytest.fixture(scope="module")
def good_condensation(tmp_path_factory):
    """A folder holding a well-formed condensation.json, which measure.py --compare draws (the control of the test
    below, the same for each of its cases: drawn once)."""
    good = tmp_path_factory.mktemp("good")
    (good / "condensation.json").write_text(json.dumps(measured()))
    out = good.parent / f"{good.name}_compared"
    run_script("measure.py", f"--compare={good},{good}", f"--out_dir={out}")
    assert (out / "compare.png").exists()
    return good


@pytest.mark.parametrize("obj, words", [
    ({"runs": "a"}, "'runs' is not a list of measured runs"),
    ({"runs": [measured(), "b"]}, "runs[1] is a str, not a dict"),
    (measured(step="4"), "the run['step'] is '4', not an integer or null"),
    (measured(mean_cossim=...), "the run['mean_cossim'] is 'missing', not a list of numbers"),
    (measured(histograms=[["x"] * 128] * 3), "the run['histograms'] is"),
    (measured(mean_last_n=[0.9]), "the run['mean_last_n'] is [0.9], not a list of 3 numbers"),
    (measured(measures=["mean_cossim", "isoscore"]), "the run['isoscore'] (a measure it lists) is 'missing'"),
    (measured(seed=[1]), "the run['seed'] is [1], not a string, a number or null"),
    ([1, 2], "the run is a list, not a dict"),
])
def test_a_malformed_condensation_json_is_one_line_naming_file_and_field(obj, words, good_condensation, tmp_path,
                                                                         data_dir, capsys):
    good, bad = good_condensation, tmp_path / "bad"  # good: drawn by measure.py --compare (the control)
    bad.mkdir()
    (bad / "condensation.json").write_text(json.dumps(obj))
    line = refused(capsys, "measure.py", f"--compare={good},{bad}", f"--out_dir={tmp_path / 'cmp'}")
    assert line.startswith(f"error: {bad}/condensation.json: ") and words in line, line
    assert not (tmp_path / "cmp").exists()
    # the same file, as what an out_dir measured before: refused, the file left as it is
    before = snapshot(bad)
    ckpt = make_ckpt(tmp_path / "run", data_dir)
    line = refused(capsys, "measure.py", f"--ckpt={ckpt}", f"--dataset={data_dir}", f"--out_dir={bad}")
    assert f"cannot read what {bad} measured before: {bad}/condensation.json: " in line and words in line, line
    assert snapshot(bad) == before


def test_training_figure_of_a_hand_edited_metrics_file(tmp_path):
    import figures
    lines = [{"step": 1, "train_loss": 5.0, "lr": 1e-3}, {"step": 2, "val_loss": 4.0, "mean_cossim": ["a", "b"]},
             {"step": 2, "val_loss": 4.0, "mean_cossim": [0.2, 0.8]}, {"step": "3", "train_loss": 1.0}, [1, 2]]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{cut sho")
    r = run_in_process("figures.py", tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "wrote" in r.stdout and (tmp_path / "training.png").stat().st_size > 0
    fig = figures.plot_training(figures.read_metrics(str(tmp_path)), str(tmp_path / "t.png"))
    probe = next(ax for ax in fig.axes if ax.get_title() == 'mean cosine by hidden state')
    assert probe.get_images()[0].get_array().tolist() == [[0.2], [0.8]]  # the one probe that is numbers

# -----------------------------------------------------------------------------
# the temporary files of killed writes: removed by the next writer there, and only those

KILLED_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from atomic import atomic_write
def write(f):
    f.write(b'half a file')
    f.flush()
    open(sys.argv[3], 'w').close()
    time.sleep(600)
atomic_write(sys.argv[2], write)
"""


def killed_write(path, tmp_path):
    """Start writing path with atomic_write in another process and kill it (SIGKILL) in the middle: the temporary
    file it leaves."""
    ready = tmp_path / f"ready_{os.path.basename(path)}"
    p = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, ROOT, str(path), str(ready)], env=ENV)
    try:
        deadline = time.time() + 60
        while not ready.exists() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert ready.exists(), "the writer did not start writing"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    left = f"{path}.{p.pid}.tmp"
    assert os.path.isfile(left) and open(left, "rb").read() == b"half a file"
    return left


def test_killed_writes_are_cleaned_by_the_next_writer_and_nothing_else(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    left = [killed_write(out / name, tmp_path) for name in ("run.json", "metrics.jsonl", "training.png")]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        alive = out / f"eval.json.{sleeper.pid}.tmp"  # a write in progress (its process lives)
        alive.write_text("being written")
        keep = [out / "notes.123.tmp", out / "mine.json.999999.tmp", alive]  # a user's files, in our pattern too
        for f in keep[:2]:
            f.write_text("a user's file")
        time.sleep(0.05)  # older than the next process's start
        # the next train.py there: what it does first (run_dir.claim_out_dir), in a process of its own
        claim = f"import sys; sys.path.insert(0, {ROOT!r}); from run_dir import claim_out_dir; " \
                f"claim_out_dir({str(out)!r}, resume=False, overwrite=False)"
        r = subprocess.run([sys.executable, "-c", claim], capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr[-2000:]
        names = os.listdir(out)
        assert not any(os.path.basename(f) in names for f in left), names
        assert all(f.exists() for f in keep)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_each_writer_cleans_only_the_temporaries_of_what_it_writes(tmp_path, monkeypatch):
    """In-process: measure.py's condensation.json and a figure, and a user's file beside them."""
    left = {name: killed_write(tmp_path / name, tmp_path) for name in ("condensation.json", "trend.png", "a.txt")}
    monkeypatch.setattr(atomic, "STARTED", time.time())  # as a process started now
    atomic.atomic_write(str(tmp_path / "condensation.json"), "{}")
    assert not os.path.exists(left["condensation.json"]) and os.path.exists(left["trend.png"])
    atomic.clean_stale(str(tmp_path), ["*.png"])
    assert not os.path.exists(left["trend.png"]) and os.path.exists(left["a.txt"])
    fresh = tmp_path / f"trend.png.{os.getpid() + 1}.tmp"  # newer than this process: never touched
    monkeypatch.setattr(atomic, "STARTED", time.time() - 60)
    fresh.write_text("x")
    atomic.clean_stale(str(tmp_path), ["*.png"])
    assert fresh.exists()


def test_an_interrupted_write_leaves_no_temporary(tmp_path):
    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt
    (tmp_path / "eval.json").write_text("before")
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write(str(tmp_path / "eval.json"), interrupted)
    assert os.listdir(tmp_path) == ["eval.json"] and (tmp_path / "eval.json").read_text() == "before"
