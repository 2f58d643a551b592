"""eval.py: lm-eval scores equal lm-eval's own HFLM on the same weights; tables.py: the Table 2 statistics (and
eval.py --table is tables.py, byte for byte); sweep.py's commands; one-line errors.

HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q tests/test_eval.py

Hermetic: the tasks are YAMLs over local JSON files written into pytest tmp dirs, the models tiny and random,
the tokenizers built in-process. The reference side runs lm_eval.simple_evaluate with HFLM(pretrained=<HF dir>),
the way anyone would evaluate a saved Hugging Face model.
"""
import os

# read once at import time by huggingface_hub / datasets / transformers: set before anything imports them
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import csv
import json
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch
from scipy import stats

import lm_eval
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

import data
import eval as eval_script
import tables
from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 1  # eval.py's default for --init_from (and the official runs' seed)

QUESTIONS = [  # (question, choices, index of the answer)
    ("What color is the sky on a clear day?", ["blue", "green", "red"], 0),
    ("How many legs does a cat have?", ["two", "four", "six"], 1),
    ("Which animal says moo?", ["dog", "cow", "bird"], 1),
    ("What do bees make?", ["honey", "milk", "silk"], 0),
    ("Where do fish live?", ["trees", "water", "sand"], 1),
    ("What is frozen water called?", ["steam", "ice", "mud"], 1),
    ("Which season is the coldest?", ["summer", "spring", "winter"], 2),
    ("What do we use to see?", ["eyes", "ears", "hands"], 0),
    ("What falls from clouds?", ["rain", "rocks", "leaves"], 0),
    ("Which is a fruit?", ["carrot", "apple", "onion"], 1),
    ("What shines at night?", ["sun", "moon", "rainbow"], 1),
    ("How many days are in a week?", ["five", "seven", "ten"], 1),
    ("What do plants need to grow?", ["light", "plastic", "noise"], 0),
    ("Which one can fly?", ["fish", "snake", "eagle"], 2),
]
TEXTS = [  # for the perplexity task: longer than the byte model's 32-token context, so windows roll
    "The quick brown fox jumps over the lazy dog while the cat sleeps in the warm afternoon sun.",
    "Rivers carry water from the mountains to the sea, and along the way they shape valleys and plains.",
    "A small language model reads one token at a time and predicts the next one from what came before.",
]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    """tiny_mc: 14 multiple-choice questions (+3 for few-shot examples); tiny_ppl: a rolling-loglikelihood task."""
    d = tmp_path_factory.mktemp("tasks")
    rows = [{"question": q, "choices": c, "label": a} for q, c, a in QUESTIONS]
    write_jsonl(d / "train.jsonl", rows[:3])
    write_jsonl(d / "test.jsonl", rows[3:] + rows[:3])
    write_jsonl(d / "ppl.jsonl", [{"text": t} for t in TEXTS])
    (d / "tiny_mc.yaml").write_text(f"""task: tiny_mc
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    train: {d / 'train.jsonl'}
    test: {d / 'test.jsonl'}
training_split: train
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
""")
    (d / "tiny_ppl.yaml").write_text(f"""task: tiny_ppl
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    test: {d / 'ppl.jsonl'}
test_split: test
output_type: loglikelihood_rolling
num_fewshot: 0
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
  - metric: bits_per_byte
    aggregation: bits_per_byte
    higher_is_better: false
metadata:
  version: 1.0
""")
    return str(d)


def bpe_tokenizer():
    """A byte-level BPE trained in-process on the task text (GPT-2's kind of tokenizer, no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [f"Question: {q}\nAnswer: {' '.join(c)}" for q, c, _ in QUESTIONS] + TEXTS
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny random GPT-2 saved with save_pretrained, its tokenizer saved next to it."""
    from transformers import GPT2Config, GPT2LMHeadModel
    d = str(tmp_path_factory.mktemp("hf_gpt2"))
    tok = bpe_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():  # GPT-2's init is small (std 0.02): make the predictions differ between choices
        for p in model.parameters():
            p.mul_(4.0)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def byte_ckpt(tmp_path_factory):
    """A train.py-format checkpoint of a tiny GPT with the byte tokenizer, and the same model exported to an HF
    directory (to_hf().save_pretrained + the byte HF tokenizer) for the reference side."""
    d = tmp_path_factory.mktemp("byte_run")
    torch.manual_seed(1)
    config = GPTConfig(block_size=32, vocab_size=257, n_layer=2, n_head=2, n_embd=32)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ckpt = {"arch": "gpt", "model_args": asdict(config), "model": model.state_dict(), "optimizer": {},
            "step": 10, "config": {"seed": 3, "reg": "dispersion", "reg_loc": "all", "noisy_embedding_alpha": 0.0,
                                   "active_forgetting_every": 0},
            "data_meta": {"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257, "eot_token": 256},
            "rng": None, "data_position": 0}
    out_dir = d / "out"
    out_dir.mkdir()
    torch.save(ckpt, out_dir / "ckpt.pt")
    ref_dir = str(d / "ref_hf")
    model.to_hf().save_pretrained(ref_dir)
    data.hf_tokenizer("byte").save_pretrained(ref_dir)
    return str(out_dir), ref_dir, model


def reference(hf_path, task_dir, num_fewshot, seed):
    """lm-eval on its own: HFLM loads the HF directory (model and tokenizer) and runs each task."""
    lm = HFLM(pretrained=hf_path, device="cpu", batch_size=1)
    tm = TaskManager(include_path=task_dir, include_defaults=False)
    res = {}
    for task, shots in (("tiny_mc", num_fewshot), ("tiny_ppl", 0)):
        r = lm_eval.simple_evaluate(model=lm, tasks=[task], num_fewshot=shots, limit=500, task_manager=tm,
                                    log_samples=True, random_seed=seed, numpy_random_seed=seed,
                                    torch_random_seed=seed, fewshot_random_seed=seed)
        res[task] = (r["results"][task], r["samples"][task])
    return res


def assert_same_scores(got_results, got_samples, ref):
    assert got_results["tiny_mc"]["acc,none"] == ref["tiny_mc"][0]["acc,none"]
    assert got_results["tiny_ppl"]["word_perplexity,none"] == ref["tiny_ppl"][0]["word_perplexity,none"]
    assert got_results["tiny_ppl"]["bits_per_byte,none"] == ref["tiny_ppl"][0]["bits_per_byte,none"]
    for task in ("tiny_mc", "tiny_ppl"):
        got, want = got_samples[task], ref[task][1]
        assert len(got) == len(want) > 0
        for g, w in zip(got, want):  # same prompts (so the same few-shot draws) and the same log-likelihoods
            assert [list(a) for a in g["arguments"]] == [list(a) for a in w["arguments"]]
            np.testing.assert_array_equal(np.array(g["resps"], dtype=object).ravel().astype(float),
                                          np.array(w["resps"], dtype=object).ravel().astype(float))
    # the models are not trivial: the choices get different scores
    lls = [np.array(s["resps"], dtype=object).ravel()[::2].astype(float) for s in ref["tiny_mc"][1]]
    assert all(np.ptp(x) > 1e-3 for x in lls)


def run_main(*args):
    """eval.py's command line in this process (lm-eval and torch are imported once: subprocesses cost ~8 s each).
    reload() resets the module's config globals, which configure() overwrites."""
    import importlib
    module = importlib.reload(eval_script)
    argv = sys.argv
    sys.argv = ["eval.py", *args]
    try:
        module.main()
    finally:
        sys.argv = argv


def run_cli(*args, script="eval.py"):
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=300)


def run_tables(*args):
    return run_cli(*args, script="tables.py")


def assert_one_line_error(p, *needles, code=1):
    assert p.returncode == code, p.stderr[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), p.stderr[-2000:]
    for needle in needles:
        assert needle in last, last


def test_hf_dir_cli_matches_lm_eval(hf_dir, task_dir, tmp_path, capsys):
    out = tmp_path / "runs" / "run.json"  # --out creates its folder
    run_main(f"--init_from={hf_dir}", "--tasks=tiny_mc,tiny_ppl", f"--include_path={task_dir}",
             "--device=cpu", "--log_samples=True", f"--out={out}")
    stdout = capsys.readouterr().out
    run = json.loads(out.read_text())
    # GPT-2 family defaults (1-shot, 500 docs); tiny_ppl pins 0 shots in its YAML
    assert run["config"]["num_fewshot"] == 1 and run["config"]["limit"] == 500 and run["config"]["seed"] == SEED
    assert run["n-shot"] == {"tiny_mc": 1, "tiny_ppl": 0} and run["n-samples"]["tiny_mc"]["effective"] == 14
    assert run["label"] == hf_dir and "lm_eval" in run["config"]["package_versions"]
    assert_same_scores(run["results"], run["samples"], reference(hf_dir, task_dir, num_fewshot=1, seed=SEED))
    # the printed table reports acc and word_perplexity
    acc = run["results"]["tiny_mc"]["acc,none"]
    assert any(line.split()[:3] == ["tiny_mc", "1", "acc"] and float(line.split()[3]) == pytest.approx(acc, abs=1e-4)
               for line in stdout.splitlines())
    assert any(line.split()[:3] == ["tiny_ppl", "0", "word_perplexity"] for line in stdout.splitlines())


def test_checkpoint_matches_lm_eval(byte_ckpt, task_dir, tmp_path):
    out_dir, ref_dir, model = byte_ckpt
    ref = reference(ref_dir, task_dir, num_fewshot=2, seed=3)
    # the CLI on a train.py checkpoint: byte tokenizer from data_meta, seed = the training seed (3)
    out = tmp_path / "ckpt_run.json"
    run_main(f"--ckpt={out_dir}", "--tasks=tiny_mc,tiny_ppl", f"--include_path={task_dir}", "--num_fewshot=2",
             "--device=cpu", "--log_samples=True", f"--out={out}")
    run = json.loads(out.read_text())
    assert run["label"] == "L_train + dispersion" and run["seed"] == 3 and run["config"]["tokenizer"] == "byte"
    assert run["n-shot"]["tiny_mc"] == 2 and run["config"]["seed"] == 3
    assert_same_scores(run["results"], run["samples"], ref)
    # evaluate(), what train.py calls, on the model in memory (in train mode): same scores, train mode restored
    model.train()
    res = eval_script.evaluate(model, "byte", ["tiny_mc", "tiny_ppl"], num_fewshot=2, limit=500, seed=3,
                               include_path=task_dir, log_samples=True)
    assert model.training
    assert_same_scores(res["results"], res["samples"], ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_batch_matches_cpu(hf_dir, task_dir, tmp_path):
    """On GPU the defaults are device cuda and lm-eval's automatic batch size: same accuracy as lm-eval on CPU,
    log-likelihoods equal up to GPU float32 rounding and batch padding."""
    out = tmp_path / "cuda_run.json"
    run_main(f"--init_from={hf_dir}", "--tasks=tiny_mc,tiny_ppl", f"--include_path={task_dir}", "--log_samples=True",
             f"--out={out}")
    run = json.loads(out.read_text())
    assert run["config"]["device"] == "cuda" and run["config"]["batch_size"] == "auto"
    ref = reference(hf_dir, task_dir, num_fewshot=1, seed=SEED)
    assert run["results"]["tiny_mc"]["acc,none"] == ref["tiny_mc"][0]["acc,none"]
    for task in ("tiny_mc", "tiny_ppl"):
        got = np.concatenate([np.array(s["resps"], dtype=object).ravel().astype(float) for s in run["samples"][task]])
        want = np.concatenate([np.array(s["resps"], dtype=object).ravel().astype(float) for s in ref[task][1]])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


# --- tables.py: the Table 2 statistics ------------------------------------------------------------------------
# 3 methods x 3 seeds x 3 tasks; mmlu comes with a subtask that the table must leave out
SCORES = {  # method -> task -> per-seed accuracy
    "L_train": {"anli_r2": [0.30, 0.32, 0.34], "piqa": [0.60, 0.61, 0.65], "mmlu": [0.25, 0.24, 0.26]},
    "L_train + noisy embedding": {"anli_r2": [0.31, 0.33, 0.35], "piqa": [0.62, 0.60, 0.61],
                                  "mmlu": [0.25, 0.25, 0.25]},
    "L_train + dispersion": {"anli_r2": [0.32, 0.30, 0.34], "piqa": [0.66, 0.64, 0.65],
                             "mmlu": [0.27, 0.26, 0.26]},
}
# ranks by mean, by hand: anli_r2 means 32, 33, 32 -> (2.5, 1, 2.5); piqa 62, 61, 65 -> (2, 3, 1);
# mmlu 25, 25, 26.33 -> (2.5, 2.5, 1)
RANKS = {"L_train": (2.5 + 2 + 2.5) / 3, "L_train + noisy embedding": (1 + 3 + 2.5) / 3,
         "L_train + dispersion": (2.5 + 1 + 1) / 3}


def write_runs(tmp_path):
    paths = []
    for method, tasks in SCORES.items():
        for s in range(3):
            results = {t: {"acc,none": v[s], "acc_stderr,none": 0.01, "alias": t} for t, v in tasks.items()}
            results["mmlu_anatomy"] = {"acc,none": 0.9}  # a subtask of the mmlu group: not a column
            run = {"results": results, "group_subtasks": {"mmlu": ["mmlu_anatomy"]}, "seed": s,
                   "config": {"seed": s}}
            if method == "L_train + noisy embedding":  # label derived from the training config
                run["config"]["train_config"] = {"reg": "none", "noisy_embedding_alpha": 1.0}
            else:
                run["label"] = method
            path = tmp_path / f"{method.replace(' ', '_').replace('+', 'p')}_{s}.json"
            path.write_text(json.dumps(run))
            paths.append(str(path))
    return paths


def test_table_statistics(tmp_path):
    paths = write_runs(tmp_path)
    md_path = tmp_path / "tables" / "table2.md"  # --table_out creates its folder
    p = run_tables(*paths, f"--table_out={md_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    with open(tmp_path / "tables" / "table2.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert list(rows) == list(SCORES)
    tasks = ["anli_r2", "piqa", "mmlu"]
    assert not any(k.startswith("mmlu_anatomy") for k in next(iter(rows.values())))
    per_seed_avg = {}
    for method, scores in SCORES.items():
        r = rows[method]
        x = {t: 100 * np.array(scores[t]) for t in tasks}
        for t in tasks:
            assert float(r[f"{t}_mean"]) == pytest.approx(x[t].sum() / 3, abs=1e-9)
            sd = np.sqrt(((x[t] - x[t].sum() / 3) ** 2).sum() / 2)  # sample std, ddof=1, by hand
            assert float(r[f"{t}_std"]) == pytest.approx(sd, abs=1e-9)
        per_seed_avg[method] = (x["anli_r2"] + x["piqa"] + x["mmlu"]) / 3
        avg = per_seed_avg[method]
        assert float(r["average_mean"]) == pytest.approx(avg.mean(), abs=1e-9)
        assert float(r["average_std"]) == pytest.approx(np.sqrt(((avg - avg.mean()) ** 2).sum() / 2), abs=1e-9)
        assert float(r["rank"]) == pytest.approx(RANKS[method], abs=1e-12)
    # Welch's t-test against the dispersion run (the default reference), scipy as the reference for p
    ref = per_seed_avg["L_train + dispersion"]
    for method in ("L_train", "L_train + noisy embedding"):
        want = stats.ttest_ind(per_seed_avg[method], ref, equal_var=False).pvalue
        assert float(rows[method]["p_value"]) == pytest.approx(want, rel=1e-9)
        band = next(f"p < {c:g}" for c in (0.0001, 0.001, 0.01, 0.05, 2) if want < c)
        assert rows[method]["significance"] == (band if want < 0.05 else "n.s.")
    assert rows["L_train + dispersion"]["significance"] == "ref."
    # markdown: the paper's cells (percent, one decimal, mean ± std), best in bold; printed and written
    md = md_path.read_text()
    assert md == p.stdout
    line = next(l for l in md.splitlines() if l.startswith("| L_train + dispersion |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:5] == ["L_train + dispersion", "3", "32.0 ± 2.0", "**65.0 ± 1.0**", "**26.3 ± 0.6**"]
    assert cells[5] == "**1.5**" and cells[7] == "ref."


def test_eval_table_is_tables_py(tmp_path):
    """eval.py --table hands its run files, --table_out and --reference to tables.py: the same bytes printed, the
    same files written, the same warnings and errors."""
    paths = write_runs(tmp_path)
    extra = tmp_path / "base_run" / "eval.json"  # train.py's eval.json (the training config, no label), one seed,
    extra.parent.mkdir()                         # with a task the other runs lack (left out, with a warning)
    extra.write_text(json.dumps({"seed": 1, "config": {"seed": 1, "reg": "dispersion", "reg_loc": "early"},
                                 "results": {t: {"acc,none": 0.4} for t in ("anli_r2", "piqa", "mmlu", "hellaswag")}}))
    got = {}
    for name, run in (("eval", lambda *a: run_cli("--table", *a)), ("tables", run_tables)):
        out = tmp_path / name / "t.md"
        p = run(*paths, str(extra), f"--table_out={out}", "--reference=L_train")
        assert p.returncode == 0, p.stderr[-3000:]
        got[name] = (p.stdout, p.stderr, out.read_bytes(), out.with_suffix(".csv").read_bytes())
    assert got["eval"] == got["tables"]
    stdout, stderr = got["tables"][:2]
    assert stderr == "warning: left out tasks not in every run: hellaswag\n"
    # the train.py run is named from its training config; 40% is the best ANLI and MMLU score, not PIQA's
    assert "\n| L_train + dispersion (early) | 1 | **40.0** | 40.0 | **40.0** |" in stdout
    assert "against 'L_train'" in stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p, q = run_cli("--table", str(bad)), run_tables(str(bad))
    assert_one_line_error(p, str(bad), "cannot read run json")
    assert (p.returncode, p.stdout, p.stderr) == (q.returncode, q.stdout, q.stderr)


def test_tables_imports_no_torch():
    """tables.py reads JSON files and runs scipy: neither torch nor lm-eval comes in with it."""
    code = "import sys, tables; print(sorted(m for m in ('torch', 'lm_eval', 'transformers') if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "[]\n", p.stderr[-2000:]
    # run files are the arguments that are neither options nor the value of `--key value`
    assert tables.split_run_files(["a.json", "--table_out", "t.md", "b.json", "--reference=L_train", "-h"]) == \
        (["--table_out", "t.md", "--reference=L_train", "-h"], ["a.json", "b.json"])


def test_paper_tasks():
    """The default task list is Table 2's ten benchmarks (the paper), six zero-shot and four few-shot."""
    ten = ["anli_r2", "lambada_openai", "openbookqa", "piqa", "truthfulqa_mc2", "winogrande",
           "arc_easy", "arc_challenge", "medmcqa", "mmlu"]
    assert eval_script.task_list("") == eval_script.task_list(None) == eval_script.task_list("paper") == ten
    assert [t for t in ten if t in eval_script.ALWAYS_ZERO_SHOT] == ten[:6]
    assert eval_script.task_list(" piqa, mmlu ,") == eval_script.task_list(["piqa", "mmlu"]) == ["piqa", "mmlu"]
    # tables.py's columns: the same ten in the same order, then the Wikitext-103 perplexity
    assert list(tables.COLUMNS) == ten + ["paloma_wikitext_103"]


def test_welch_single_run_is_one_sample_test():
    a, b = [35.1, 35.6, 35.3], [34.4]
    assert tables.welch_p(a, b) == pytest.approx(stats.ttest_1samp(a, 34.4).pvalue, rel=1e-12)
    assert tables.welch_p(b, a) == tables.welch_p(a, b)
    assert [tables.p_band(p) for p in (5e-5, 5e-4, 5e-3, 0.03, 0.2)] == \
        ["p < 0.0001", "p < 0.001", "p < 0.01", "p < 0.05", "n.s."]


# --- errors: one line, naming the problem, non-zero exit ------------------------------------------------------


def test_unknown_task(hf_dir, task_dir):
    p = run_cli(f"--init_from={hf_dir}", "--tasks=tiny_mc,no_such_task_xyz", f"--include_path={task_dir}")
    assert_one_line_error(p, "no_such_task_xyz")
    assert "tiny_mc" not in p.stderr.strip().splitlines()[-1]


def test_dataset_offline(hf_dir, tmp_path):
    (tmp_path / "offline_probe.yaml").write_text("""task: offline_probe
dataset_path: someone/not-downloaded-dataset
output_type: multiple_choice
test_split: test
doc_to_text: "{{q}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""")
    p = run_cli(f"--init_from={hf_dir}", "--tasks=offline_probe", f"--include_path={tmp_path}")
    assert_one_line_error(p, "offline_probe", "download", "HF_DATASETS_OFFLINE")


def test_no_model_and_constants_not_keys():
    assert_one_line_error(run_cli("--tasks=piqa"), "no model given", code=2)
    # module constants are not config keys: only the defaults block is
    assert_one_line_error(run_cli("--ALWAYS_ZERO_SHOT=[]", "--init_from=gpt2"), "unknown config key 'ALWAYS_ZERO_SHOT'",
                          code=2)


def test_table_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"config": {"seed": 1}}))
    assert_one_line_error(run_tables(str(bad)), str(bad), "results")
    good = tmp_path / "good.json"  # the same run twice would pass for two seeds
    good.write_text(json.dumps({"label": "L_train", "seed": 1, "results": {"piqa": {"acc,none": 0.6}}}))
    assert_one_line_error(run_tables(str(good), str(good)), "L_train", "seed 1")
    assert_one_line_error(run_tables(), "no run json files", code=2)
    assert_one_line_error(run_tables("--COLUMNS={}", str(good)), "unknown config key 'COLUMNS'", code=2)
    assert_one_line_error(run_cli("--table"), "--table needs run json files", code=2)


# --- sweep.py: the runs of a table, then tables.py over their eval.json --------------------------------------


def run_sweep(*args):
    return subprocess.run([sys.executable, "sweep.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_sweep_dry_run_commands():
    p = run_sweep("--table=3", "--seeds=1,2", "--nproc=1", "--dry_run=True")
    assert p.returncode == 0, p.stderr
    runs = [f"midtrain_gpt2_disp_{where}_s{s}" for where in ("early", "late") for s in (1, 2)]
    assert p.stdout.splitlines() == [
        f"{sys.executable} train.py config/{r[:-3]}.py --seed={r[-1]} --out_dir=out/{r}" for r in runs] + [
        f"{sys.executable} tables.py {' '.join(f'out/{r}/eval.json' for r in runs)} --table_out=out/table3.md"]
    p = run_sweep("--table=5", "--seeds=7", "--dry_run=True")  # one seed; 8 GPUs per run by default
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[:2] == [
        f"torchrun --standalone --nproc_per_node=8 train.py config/{c}.py --seed=7 --out_dir=out/{c}_s7"
        for c in ("pretrain_qwen3_0_6b", "pretrain_qwen3_0_6b_disp")]
    for bad, needle in (("--seeds=1.5,2", "--seeds expects integers"), ("--table=7", "unknown table '7'"),
                        ("--family=gpt3", "no config file for midtrain_gpt3")):
        p = run_sweep(bad, "--dry_run=True")
        assert_one_line_error(p, needle, code=2)
