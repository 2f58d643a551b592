"""lm-eval during training, as the official runs: at step 0, every lm_eval_interval steps and at the end; eval.json
keeps the final `results` and the `history` of every evaluation (resumes included), each equal to lm-eval's own
HFLM on the model of that step; in exact float32; and the same training time as the final checkpoint."""
import json
import os

import pytest
import torch

import data
from checkpoint import load_checkpoint
from conftest import assert_one_line_error
from hf_io import to_hf
from test_eval import no_machine_report, reference, task_dir  # noqa: F401 (fixtures; the first: autouse)
from test_train import data_dir, train_here  # noqa: F401 (data_dir: a fixture)


def lm_eval_reference(ckpt_path, task_dir, tmp_path, seed):
    """lm-eval's HFLM on the snapshot exported as a Hugging Face folder: tiny_mc's accuracy."""
    model, _ = load_checkpoint(ckpt_path)
    folder = str(tmp_path / f"hf_{os.path.basename(ckpt_path)}")
    to_hf(model).save_pretrained(folder)
    data.hf_tokenizer("byte").save_pretrained(folder)
    return reference(folder, task_dir, 1, seed)["tiny_mc"][0]


def test_history_at_start_interval_and_end_through_a_resume(tmp_path, data_dir, task_dir):
    out = tmp_path / "run"
    args = ["--eval_tasks=tiny_mc", f"--eval_include_path={task_dir}", "--lm_eval_interval=2",
            "--lm_eval_at_start=True", "--eval_interval=2", "--snapshot_interval=2", "--seed=3"]
    train_here(out, data_dir, "--max_iters=2", *args)
    first = json.load(open(out / "eval.json"))
    assert [h["step"] for h in first["history"]] == [0, 2]
    train_here(out, data_dir, "--max_iters=6", "--init_from=resume", *args)  # longer: step 2 was its interval eval
    ev = json.load(open(out / "eval.json"))
    steps = [h["step"] for h in ev["history"]]
    assert steps == [0, 2, 4, 6]  # step 2 once: the first run's final evaluation stands for it
    assert ev["history"][-1]["results"] == ev["results"]  # the final evaluation is the last entry
    assert ev["history"][0] == first["history"][0]  # kept across the resume
    assert torch.load(out / "ckpt_000000.pt", weights_only=True)["step"] == 0  # the starting model is kept too
    for step in (4, 6):  # each entry is what lm-eval itself scores on the model of that step
        ref = lm_eval_reference(str(out / f"ckpt_{step:06d}.pt"), task_dir, tmp_path, seed=3)
        got = next(h for h in ev["history"] if h["step"] == step)["results"]["tiny_mc"]
        assert got["acc,none"] == ref["acc,none"]
    # one training time: eval.json's is the final checkpoint's record
    assert ev["compute"] == torch.load(out / "ckpt.pt", weights_only=True)["compute"]
    assert ev["compute"]["hours"] > first["compute"]["hours"]


def test_lm_eval_during_training_refused_under_fsdp_before_anything_is_written(tmp_path, data_dir):
    """As the first of two processes under torchrun sees it (torchrun's variables, but no MASTER_ADDR): refused
    before the processes join, so one process shows it; a check moved past the join would fail here at once."""
    torchrun = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0"}
    r = train_here(tmp_path / "run", data_dir, "--eval_tasks=tiny_mc", "--lm_eval_interval=2", "--parallel=fsdp",
                   env=torchrun, check=False)
    assert_one_line_error(r, "needs the whole model in one process", code=2)
    assert not (tmp_path / "run").exists()


def test_lm_eval_runs_in_exact_float32_even_where_tf32_is_on(monkeypatch):
    """train.py allows TF32 for training; the lm-eval it runs (eval.evaluate) must not use it: inside, the flags
    read False, and the caller's setting is back afterwards."""
    import eval as eval_py
    from model import GPT, GPTConfig
    seen = []
    monkeypatch.setattr(eval_py, "load_tasks", lambda names, include_path='': (None, {}))
    monkeypatch.setattr(eval_py, "run_lm_eval", lambda *a, **k: seen.append(
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)) or {"results": {}})
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        model = GPT(GPTConfig(block_size=16, vocab_size=257, n_layer=1, n_head=2, n_embd=16))
        eval_py.evaluate(model, "byte", "tiny_mc")
        assert seen == [(False, False)]
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("name", ["midtrain_gpt2", "midtrain_gpt2m", "midtrain_qwen3_0_6b", "midtrain_qwen3_1_7b"])
def test_paper_configs_evaluate_as_the_official_runs(name, capsys):
    """The official callback: every max_steps // 5 + 1 steps (306 for 1,526 steps), and at step 0."""
    from test_configs import resolve
    cfg = resolve(f"config/{name}.py", capsys=capsys)
    assert cfg["lm_eval_interval"] == cfg["max_iters"] // 5 + 1 == 306 and cfg["lm_eval_at_start"] is True
