"""eval.py: lm-eval scores equal lm-eval's own HFLM on the same weights; tables.py: the Table 2 statistics (the
paper's own Rank column reproduced from its printed means; eval.py --table is tables.py, byte for byte); sweep.py's
commands; one-line errors.

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
import shutil
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
from conftest import assert_one_line_error, run_in_process
from hf_io import to_hf
from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 1  # eval.py's default for --init_from (and the official runs' seed)
COMPUTE = {"hours": 1.176, "processes": 8, "device": "NVIDIA A100-SXM4-80GB"}  # train.py's record in a checkpoint

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


@pytest.fixture(scope="module", autouse=True)
def no_machine_report():
    """lm-eval adds torch's machine report to every result (torch.utils.collect_env runs pip, nvidia-smi and more:
    ~1.5 s a call, on our side and the reference's); no test reads it, and it is no score."""
    import torch.utils.collect_env
    with pytest.MonkeyPatch.context() as m:
        m.setattr(torch.utils.collect_env, "get_pretty_env_info", lambda: "(not collected in tests)")
        yield


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


def byte_run(out_dir, ref_dir, weights_seed=1, seed=3, reg="dispersion", compute=COMPUTE):
    """A train.py run (out_dir/ckpt.pt) of a tiny GPT with the byte tokenizer, trained with `seed` and `reg`, and the
    same model exported to an HF directory (to_hf().save_pretrained + the byte HF tokenizer) for the reference
    side. Returns the model."""
    torch.manual_seed(weights_seed)
    config = GPTConfig(block_size=32, vocab_size=257, n_layer=2, n_head=2, n_embd=32)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    ckpt = {"arch": "gpt", "model_args": asdict(config), "model": model.state_dict(), "optimizer": {},
            "step": 10, "config": {"seed": seed, "reg": reg, "reg_loc": "all", "noisy_embedding_alpha": 0.0,
                                   "active_forgetting_every": 0},
            "data_meta": {"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257, "eot_token": 256},
            "rng": None, "data_position": 0, "compute": compute}
    os.makedirs(out_dir)
    torch.save(ckpt, os.path.join(out_dir, "ckpt.pt"))
    to_hf(model).save_pretrained(ref_dir)
    data.hf_tokenizer("byte").save_pretrained(ref_dir)
    return model


@pytest.fixture(scope="module")
def byte_ckpt(tmp_path_factory):
    """One run: (its out_dir, its HF export, the model)."""
    d = tmp_path_factory.mktemp("byte_run")
    model = byte_run(str(d / "out"), str(d / "ref_hf"))
    return str(d / "out"), str(d / "ref_hf"), model


@pytest.fixture(scope="module")
def byte_ref(byte_ckpt, task_dir):
    """lm-eval on its own on that run's HF export: 2-shot, seeds 3 (the run's training seed)."""
    return reference(byte_ckpt[1], task_dir, num_fewshot=2, seed=3)


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
    """The script's command line, judged as a subprocess is (exit code, stdout, stderr), run in this process: lm-eval,
    torch and transformers are imported once (a fresh interpreter costs seconds each)."""
    return run_in_process(script, *args)


def run_subprocess(*args, script="eval.py"):
    """The command line in a fresh interpreter: what it prints includes whatever its imports print."""
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}, timeout=300)


def run_tables(*args):
    return run_cli(*args, script="tables.py")


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
    assert "compute" not in run  # a hub model has no training time record
    assert_same_scores(run["results"], run["samples"], reference(hf_dir, task_dir, num_fewshot=1, seed=SEED))
    # the printed table reports acc and word_perplexity
    acc = run["results"]["tiny_mc"]["acc,none"]
    assert any(line.split()[:3] == ["tiny_mc", "1", "acc"] and float(line.split()[3]) == pytest.approx(acc, abs=1e-4)
               for line in stdout.splitlines())
    assert any(line.split()[:3] == ["tiny_ppl", "0", "word_perplexity"] for line in stdout.splitlines())


def test_checkpoint_matches_lm_eval(byte_ckpt, byte_ref, task_dir, tmp_path):
    out_dir, _, model = byte_ckpt
    ref = byte_ref
    # the CLI on a train.py checkpoint: byte tokenizer from data_meta, seed = the training seed (3)
    out = tmp_path / "ckpt_run.json"
    run_main(f"--ckpt={out_dir}", "--tasks=tiny_mc,tiny_ppl", f"--include_path={task_dir}", "--num_fewshot=2",
             "--device=cpu", "--log_samples=True", f"--out={out}")
    run = json.loads(out.read_text())
    assert run["label"] == "L_train + dispersion" and run["seed"] == 3 and run["config"]["tokenizer"] == "byte"
    assert run["n-shot"]["tiny_mc"] == 2 and run["config"]["seed"] == 3
    assert run["compute"] == COMPUTE  # the checkpoint's training time, at the top level for tables.py
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


# --- a folder of runs (out/ after the paper's configs or sweep.py): each run evaluated, its eval.json written ----

TIME_B = {"hours": 0.5, "processes": 1, "device": "cpu"}


def test_a_folder_of_runs_writes_each_runs_eval_json(byte_ckpt, byte_ref, task_dir, tmp_path, capsys):
    parent = tmp_path / "out"
    runs = {"midtrain_disp_s3": (3, "dispersion", COMPUTE, 1), "midtrain_s4": (4, "none", TIME_B, 2)}
    # the first run is byte_ckpt's (byte_run's defaults: weights seed 1, seed 3, dispersion, COMPUTE), its lm-eval
    # reference shared; the second one its own weights, seed, method and time record
    shutil.copytree(byte_ckpt[0], parent / "midtrain_disp_s3")
    byte_run(str(parent / "midtrain_s4"), str(tmp_path / "midtrain_s4_hf"), 2, 4, "none", TIME_B)
    refs = {"midtrain_disp_s3": byte_ref,
            "midtrain_s4": reference(str(tmp_path / "midtrain_s4_hf"), task_dir, num_fewshot=2, seed=4)}
    (parent / "table2.md").write_text("")  # not a run: left alone
    run_main(f"--ckpt={parent}", "--tasks=tiny_mc,tiny_ppl", f"--include_path={task_dir}", "--num_fewshot=2",
             "--device=cpu", "--log_samples=True")
    stdout = capsys.readouterr().out
    assert f"{parent}: 2 runs, results to <run>/eval.json" in stdout
    for i, (name, (seed, reg, compute, _)) in enumerate(runs.items()):
        assert f"[{i + 1}/2] {parent / name}: tiny_mc, tiny_ppl\n" in stdout
        record = json.loads((parent / name / "eval.json").read_text())
        assert record["seed"] == record["config"]["seed"] == seed and record["compute"] == compute
        assert record["config"]["model"] == str(parent / name) and record["n-shot"]["tiny_mc"] == 2
        # each run's own seed and weights: lm-eval's scores of that run's HF export, on its own
        assert_same_scores(record["results"], record["samples"], refs[name])
        # tables.py reads it as it reads train.py's eval.json ({seed, config: the training config, compute, results})
        train_py = {"seed": seed, "config": record["config"]["train_config"], "compute": compute,
                    "results": record["results"], "group_subtasks": record.get("group_subtasks", {})}
        (tmp_path / f"{name}_train.json").write_text(json.dumps(train_py))
        got, want = (tables.load_run(str(p)) for p in (parent / name / "eval.json", tmp_path / f"{name}_train.json"))
        assert {**got, "path": ""} == {**want, "path": ""}
        assert got["label"] == ("L_train + dispersion" if reg == "dispersion" else "L_train")
    # --out=DIR: DIR/<run>.json each; the runs' own eval.json stay as they are
    before = {n: (parent / n / "eval.json").read_bytes() for n in runs}
    run_main(f"--ckpt={parent}", "--tasks=tiny_ppl", f"--include_path={task_dir}", "--device=cpu",
             f"--out={tmp_path / 'evals'}")
    assert sorted(os.listdir(tmp_path / "evals")) == [f"{n}.json" for n in sorted(runs)]
    assert all((parent / n / "eval.json").read_bytes() == before[n] for n in runs)
    # again into the runs: a run with results (train.py's eval.json and its history) is kept, not replaced
    capsys.readouterr()
    run_main(f"--ckpt={parent}", "--tasks=tiny_ppl", f"--include_path={task_dir}", "--device=cpu")
    assert capsys.readouterr().out.count("exists (--overwrite=True evaluates it again)") == 2
    assert all((parent / n / "eval.json").read_bytes() == before[n] for n in runs)


def test_folders_without_runs_and_folder_misuse_are_one_line(tmp_path, capsys):
    empty, other, parent = tmp_path / "empty", tmp_path / "other", tmp_path / "out"
    empty.mkdir()
    (other / "logs").mkdir(parents=True)
    (other / "notes.txt").write_text("x")
    for name in ("a", "b"):  # two runs: only the folder is looked at, before any checkpoint is read
        (parent / name).mkdir(parents=True)
        (parent / name / "ckpt.pt").write_bytes(b"")
    listing = sorted(str(p) for p in tmp_path.rglob("*"))
    for args, code, message in (
            ([f"--ckpt={empty}"], 1, f"error: no checkpoint at '{empty}': the folder is empty"),
            ([f"--ckpt={other}"], 1, f"error: no checkpoint at '{other}': it holds no ckpt.pt, and no sub-folder of "
                                     f"it is a train.py run (holds ckpt.pt or ckpt_sharded/)"),
            ([f"--ckpt={parent}", "--label=mine"], 2, "error: --label names the method of one run; the runs of a "
                                                       "folder are labelled by their training configs"),
            ([f"--ckpt={parent}", f"--out={tmp_path / 'r.json'}"], 2,
             f"error: with a folder of runs, --out names a folder (one <run>.json per run), got "
             f"'{tmp_path / 'r.json'}'")):
        with pytest.raises(SystemExit) as e:
            run_main(*args)
        assert e.value.code == code and capsys.readouterr().err.strip().splitlines() == [message]
    assert sorted(str(p) for p in tmp_path.rglob("*")) == listing


# --- tables.py: the Table 2 statistics ------------------------------------------------------------------------
# 3 methods x 3 seeds x 3 tasks; mmlu comes with a subtask that the table must leave out
SCORES = {  # method -> task -> per-seed accuracy
    "L_train": {"anli_r2": [0.30, 0.32, 0.34], "piqa": [0.60, 0.61, 0.65], "mmlu": [0.25, 0.24, 0.26]},
    "L_train + noisy embedding": {"anli_r2": [0.31, 0.33, 0.35], "piqa": [0.62, 0.60, 0.61],
                                  "mmlu": [0.25, 0.25, 0.25]},
    "L_train + dispersion": {"anli_r2": [0.32, 0.30, 0.34], "piqa": [0.66, 0.64, 0.65],
                             "mmlu": [0.27, 0.26, 0.26]},
}
# ranks by mean, by hand (a tie shares the best rank): anli_r2 means 32, 33, 32 -> (2, 1, 2); piqa 62, 61, 65 ->
# (2, 3, 1); mmlu 25, 25, 26.33 -> (2, 2, 1)
RANKS = {"L_train": (2 + 2 + 2) / 3, "L_train + noisy embedding": (1 + 3 + 2) / 3,
         "L_train + dispersion": (2 + 1 + 1) / 3}


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


def read_csv(path):
    with open(path) as f:
        return {r["method"]: r for r in csv.DictReader(f)}


def test_table_statistics(tmp_path):
    paths = write_runs(tmp_path)
    md_path = tmp_path / "tables" / "table2.md"  # --table_out creates its folder
    p = run_tables(*paths, f"--table_out={md_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    rows = read_csv(tmp_path / "tables" / "table2.csv")
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
    # the t-test against the dispersion run (the default reference), scipy as the reference for p: Student's (the
    # paper's) by default, Welch's with --ttest=welch
    ref = per_seed_avg["L_train + dispersion"]
    welch_path = tmp_path / "welch" / "table2.md"
    q = run_tables(*paths, f"--table_out={welch_path}", "--ttest=welch")
    assert q.returncode == 0, q.stderr[-3000:]
    for csv_rows, equal_var in ((rows, True), (read_csv(welch_path.with_suffix(".csv")), False)):
        for method in ("L_train", "L_train + noisy embedding"):
            want = stats.ttest_ind(per_seed_avg[method], ref, equal_var=equal_var).pvalue
            assert float(csv_rows[method]["p_value"]) == pytest.approx(want, rel=1e-9)
            band = next(f"p < {c:g}" for c in (0.0001, 0.001, 0.01, 0.05, 2) if want < c)
            assert csv_rows[method]["significance"] == (band if want < 0.05 else "n.s.")
        assert csv_rows["L_train + dispersion"]["significance"] == "ref."
    assert "t-test: Student's (scipy.stats.ttest_ind, equal_var=True)" in p.stdout
    assert "t-test: Welch's (scipy.stats.ttest_ind, equal_var=False)" in q.stdout
    assert rows["L_train"]["train_hours"] == "nan"  # no run has a training time record: no column in markdown
    assert "Training time" not in p.stdout
    # markdown: the paper's cells (percent, one decimal, mean ± std), best in bold; printed and written
    md = md_path.read_text()
    assert md == p.stdout
    line = next(l for l in md.splitlines() if l.startswith("| L_train + dispersion |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:5] == ["L_train + dispersion", "3", "32.0 ± 2.0", "**65.0 ± 1.0**", "**26.3 ± 0.6**"]
    assert cells[5] == "**1.3**" and cells[7] == "ref."


def test_eval_table_is_tables_py(tmp_path):
    """eval.py --table hands its run files, --table_out and --reference to tables.py: the same bytes printed, the
    same files written, the same warnings and errors."""
    paths = write_runs(tmp_path)
    extra = tmp_path / "base_run" / "eval.json"  # train.py's eval.json (the training config, no label), one seed,
    extra.parent.mkdir()                         # with a task the other runs lack (left out, with a warning)
    extra.write_text(json.dumps({"seed": 1, "config": {"seed": 1, "reg": "dispersion", "reg_loc": "early"},
                                 "results": {t: {"acc,none": 0.4} for t in ("anli_r2", "piqa", "mmlu", "hellaswag")}}))
    got = {}
    # eval.py in a fresh interpreter (what it prints includes anything its imports print), tables.py here
    for name, run in (("eval", lambda *a: run_subprocess("--table", *a)), ("tables", run_tables)):
        out = tmp_path / name / "t.md"
        p = run(*paths, str(extra), f"--table_out={out}", "--reference=L_train", "--ttest=welch")
        assert p.returncode == 0, p.stderr[-3000:]
        got[name] = (p.stdout, p.stderr, out.read_bytes(), out.with_suffix(".csv").read_bytes())
    assert got["eval"] == got["tables"]
    stdout, stderr = got["tables"][:2]
    assert stderr == "warning: left out tasks not in every run: hellaswag\n"
    # the train.py run is named from its training config; 40% is the best ANLI and MMLU score, not PIQA's
    assert "\n| L_train + dispersion (early) | 1 | **40.0** | 40.0 | **40.0** |" in stdout
    assert "against 'L_train'" in stdout and "Welch's" in stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p, q = run_cli("--table", str(bad)), run_tables(str(bad))
    assert_one_line_error(p, str(bad), "cannot read run json")
    assert (p.returncode, p.stdout, p.stderr) == (q.returncode, q.stdout, q.stderr)


# The paper's Table 2, transcribed: per base model, the ten task means as printed (ANLI R2 ... MMLU, in COLUMNS'
# order) and the Rank column, for the base model (✗, one run) and the seven mid-trained rows in the paper's order.
PAPER_ROWS = ["base model", "L_train", "L_train + noisy embedding", "L_train + active forgetting",
              "L_train + decorrelation", "L_train + l2_repel", "L_train + orthogonalization", "L_train + dispersion"]
PAPER_TABLE2 = {
    "GPT2": """
        34.4 30.8 15.6 61.6 40.3 52.4 42.0 16.2 25.4 24.8  6.1
        34.0 32.4 16.4 62.2 43.6 52.8 41.6 17.4 24.2 24.8  6.2
        34.3 33.0 16.9 61.1 43.9 53.6 43.7 18.0 21.6 25.4  4.3
        35.0 33.8 16.6 61.0 44.0 52.2 44.3 18.6 22.4 25.7  3.2
        35.0 33.6 17.0 60.8 43.9 52.0 43.8 18.0 24.4 25.6  3.6
        34.8 32.8 16.6 60.8 43.9 54.2 43.4 17.6 24.6 25.7  4.1
        34.4 31.2 16.8 61.6 44.2 53.4 44.2 18.0 24.8 25.6  3.2
        34.8 34.0 16.6 62.4 44.2 51.6 42.6 18.0 26.6 25.4  3.2""",
    "GPT2-m": """
        33.3 40.4 18.6 66.3 40.1 54.8 50.2 19.9 29.1 25.3  5.4
        33.1 43.2 19.1 67.7 40.5 55.5 54.2 18.9 28.2 25.1  4.5
        33.3 44.0 18.6 66.7 44.5 52.1 51.7 19.5 25.5 25.8  4.8
        33.4 43.0 18.9 66.7 44.3 50.8 51.8 19.8 26.5 26.1  4.4
        33.4 45.4 18.9 66.6 42.2 56.2 53.8 18.0 28.2 25.4  4.0
        33.6 44.2 18.5 66.2 42.4 54.4 54.0 18.6 28.9 25.3  4.7
        33.0 45.2 18.6 68.1 41.4 55.1 53.6 18.4 29.0 25.0  4.8
        33.6 45.2 19.2 67.5 43.4 56.4 53.8 20.1 28.6 25.7  2.2""",
    "Qwen3-0.6B": """
        35.0 43.0 19.5 66.5 40.7 60.5 67.5 32.5 26.5 49.4  5.7
        32.5 52.0 21.5 67.5 44.3 61.0 68.0 33.0 29.5 50.0  4.1
        34.0 48.8 20.5 66.0 49.4 57.5 67.2 34.5 35.0 48.8  5.3
        35.0 49.0 20.0 67.2 48.6 58.8 69.0 34.2 36.8 49.3  4.0
        35.0 50.5 19.5 67.5 47.0 59.5 68.5 35.0 34.0 49.8  3.5
        33.5 46.0 19.0 66.0 47.4 59.5 69.0 35.0 40.0 46.9  4.8
        35.5 50.0 22.0 65.5 49.1 56.5 71.5 33.0 36.0 48.9  4.2
        35.5 49.5 22.5 65.0 49.8 58.5 72.5 34.5 37.5 49.2  3.2""",
    "Qwen3-1.7B": """
        39.5 53.0 29.0 71.5 47.6 60.5 72.0 50.0 45.5 63.1  5.1
        40.0 60.7 28.5 74.3 49.1 61.3 71.3 47.7 49.7 63.1  4.3
        35.0 60.5 28.0 70.5 50.3 60.8 73.2 48.5 48.5 62.5  5.0
        35.2 59.5 27.5 72.5 49.9 60.5 74.2 47.2 49.0 63.2  5.0
        39.5 60.7 28.3 74.8 49.7 61.5 72.7 49.7 49.7 63.5  3.1
        33.5 47.8 23.0 67.8 42.1 57.5 68.3 41.3 38.5 42.3  8.0
        40.8 61.0 29.2 74.8 49.5 61.3 72.3 48.2 49.5 63.7  3.0
        40.2 62.2 29.0 75.2 50.2 62.7 73.0 49.3 51.0 64.1  1.7""",
}


@pytest.mark.parametrize("model", list(PAPER_TABLE2))
def test_table_ranks_reproduce_paper(model):
    """The Rank column of the paper's Table 2 from its printed means, base model included: each task's means as
    shown (one decimal), ranked 1 = best with a tie sharing the best rank (1, 2, 2, 4), averaged over the ten tasks.
    The means handed in are the printed ones moved by less than half a digit, as a run's unrounded means would be:
    the ranks are those of the means as shown. 31 of the 32 rows come out as printed; the GPT2 + l2-repel row
    comes out 4.0 where the paper prints 4.1 (the rank sum over the block is one more than these means give: one
    of that row's two-way ties, ANLI with dispersion, PIQA with decorrelation or MMLU with active forgetting, was
    broken against it; no rule on the printed means gives 4.1 and keeps the other rows)."""
    table = np.array([line.split() for line in PAPER_TABLE2[model].strip().splitlines()], dtype=float)
    means, paper_rank = table[:, :10], table[:, 10]
    tasks = list(tables.COLUMNS)[:10]
    rng = np.random.default_rng(0)
    unrounded = means + rng.uniform(-0.045, 0.045, size=means.shape)
    runs = [{"label": label, "seed": None, "compute": None, "path": label,
             "scores": {t: ("acc", v / 100) for t, v in zip(tasks, row)}} for label, row in zip(PAPER_ROWS, unrounded)]
    got = np.array([tables.table_stats(runs)["rank"][label] for label in PAPER_ROWS])
    want = paper_rank.copy()
    if model == "GPT2":
        want[PAPER_ROWS.index("L_train + l2_repel")] = 4.0  # printed 4.1: see the docstring
    np.testing.assert_allclose(got, want, atol=1e-9)
    # the rule is what makes the difference: averaged ties (scipy's default) give other ranks for tied rows
    averaged = np.mean([stats.rankdata(-means[:, j], method="average") for j in range(10)], axis=0)
    assert not np.allclose(averaged, paper_rank, atol=0.05)


def test_table_training_time(tmp_path):
    """The compute column: the mean over seeds of each run's 'compute' hours and the ratio to the L_train row,
    against the paper's GPT2 numbers (L_train 1.122 h; dispersion 1.176 h, 1.05x; decorrelation 1.221 h, 1.09x);
    '—' for a run without a record (the base model). Before the task columns, as in the paper; in the CSV too."""
    hours = {"L_train": 1.122, "L_train + decorrelation": 1.221, "L_train + dispersion": 1.176}
    paths = []
    for s in (1, 2):  # two seeds, hours 0.004 either side of the paper's value
        for method, h in hours.items():
            run = {"label": method, "seed": s, "results": {"piqa": {"acc,none": 0.6 + 0.01 * s}},
                   "compute": {"hours": h + (0.004 if s == 1 else -0.004), "processes": 8,
                               "device": "NVIDIA A100-SXM4-80GB"}}
            paths.append(tmp_path / f"{method.replace(' ', '_')}_{s}.json")
            paths[-1].write_text(json.dumps(run))
    base = tmp_path / "gpt2.json"  # eval.py --out of a hub model: no record
    base.write_text(json.dumps({"label": "gpt2", "seed": 1, "results": {"piqa": {"acc,none": 0.6}}}))
    p = run_tables(*map(str, paths), str(base), f"--table_out={tmp_path / 't.md'}")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert lines[0] == "| Method | Seeds | Training time | PIQA ↑ | Rank ↓ | Average ↑ | t-test |"
    cells = {line.split(" | ")[0][2:]: line.split(" | ")[2] for line in lines[2:6]}
    assert cells == {"L_train": "1.122 (1.00×)", "L_train + decorrelation": "1.221 (1.09×)",
                     "L_train + dispersion": "1.176 (1.05×)", "gpt2": "—"}
    assert ("Training time: device-hours (training wall time × processes, summed over resumes), mean over seeds, "
            "and its ratio to 'L_train'; — = no record; on NVIDIA A100-SXM4-80GB.") in p.stdout
    rows = read_csv(tmp_path / "t.csv")
    for method, h in hours.items():
        assert float(rows[method]["train_hours"]) == pytest.approx(h, abs=1e-12)
        assert float(rows[method]["train_hours_ratio"]) == pytest.approx(h / 1.122, abs=1e-12)
    assert rows["gpt2"]["train_hours"] == rows["gpt2"]["train_hours_ratio"] == "nan"
    # a row where only some seeds have a record: no mean over the others, a warning; no L_train row: no ratio
    partial = tmp_path / "disp_3.json"
    partial.write_text(json.dumps({"label": "L_train + dispersion", "seed": 3, "results": {"piqa": {"acc,none": 0.6}}}))
    p = run_tables(*map(str, paths[2::3]), *map(str, paths[1::3]), str(partial))
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr == ("warning: 'L_train + dispersion': 1 of 3 runs have no training time record: its training "
                        "time is left out\n")
    assert "| L_train + dispersion | 3 | — |" in p.stdout and "| L_train + decorrelation | 2 | 1.221 |" in p.stdout
    assert "mean over seeds; — = no record" in p.stdout


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


def test_single_run_is_one_sample_test():
    a, b = [35.1, 35.6, 35.3], [34.4]
    for equal_var in (True, False):
        assert tables.ttest_p(a, b, equal_var) == pytest.approx(stats.ttest_1samp(a, 34.4).pvalue, rel=1e-12)
        assert tables.ttest_p(b, a, equal_var) == tables.ttest_p(a, b, equal_var)
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
    assert_one_line_error(run_tables(str(good), "--ttest=paired"),
                          "--ttest='paired': must be one of 'student', 'welch'", code=2)
    timed = tmp_path / "timed.json"
    timed.write_text(json.dumps({"label": "L_train", "seed": 1, "compute": {"hours": "1:07"},
                                 "results": {"piqa": {"acc,none": 0.6}}}))
    assert_one_line_error(run_tables(str(timed)), str(timed), "'compute' is not a training time record")


# --- sweep.py: the runs of a table, then tables.py over their eval.json --------------------------------------


def run_sweep(*args):
    return run_in_process("sweep.py", *args)


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
    for bad, needle in (("--seeds=1.5,2", "--seeds expects integers"), ("--table=7", "--table=7: must be one of 2, 3"),
                        ("--family=gpt3", "--family='gpt3': must be one of 'gpt2', 'gpt2m'")):
        p = run_sweep(bad, "--dry_run=True")
        assert_one_line_error(p, needle, code=2)
