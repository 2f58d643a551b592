"""The researcher's path as one story, offline: a paper config under torchrun (2 gloo processes, data prepared on
first use from a local stand-in for the hub), preempted, resumed with the same command, then measure.py and eval.py
with their defaults on the folder the config wrote, tables.py over its eval.json, and export.py's folder loaded by
transformers with the same logits. Overrides are only for size and paths (and the lm-eval task, a local one)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import torch

from checkpoint import load_checkpoint
from conftest import run_in_process
from test_data import ENV, tiny_gpt2_dir, tokenizer_dirs, wikitext_source  # noqa: F401 (fixtures)
from test_eval import task_dir  # noqa: F401 (a fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
    """A one-process step of the path (measure.py, eval.py, tables.py, export.py), in this process."""
    r = run_in_process(script, *args)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def logged_steps(run_dir):
    with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
        return [m['step'] for m in map(json.loads, f) if 'train_loss' in m]


def test_train_stop_resume_measure_evaluate_table_export(tmp_path, tiny_gpt2_dir, task_dir):
    out = tmp_path / 'out'  # what the paper's configs fill: out/<name>/
    run_dir = out / 'midtrain_gpt2_disp'
    files = wikitext_source(tmp_path)
    env = dict(ENV, DATA_PREPARE_ARGS=json.dumps(
        {'wikitext': [f'--tokenizer={tiny_gpt2_dir}', f'--data_files={files!r}', '--num_proc=1']}))
    train = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', 'train.py',
             'config/midtrain_gpt2_disp.py', f'--init_from={tiny_gpt2_dir}', f'--dataset={tmp_path / "wikitext"}',
             f'--out_dir={run_dir}', '--block_size=16', '--batch_size=2', '--gradient_accumulation_steps=2',
             '--max_tokens=0', '--max_iters=16', '--eval_interval=2', '--eval_iters=2', '--log_interval=1',
             '--condensation_samples=4', '--lm_eval_interval=8', '--eval_tasks=tiny_mc',
             f'--eval_include_path={task_dir}']

    # 1. train, and be preempted: SIGTERM to torchrun once a checkpoint exists (clusters send SIGTERM); both
    # torchrun runs stay subprocesses (two processes, a signal)
    p = subprocess.Popen(train, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    deadline = time.time() + 300
    while not (run_dir / 'ckpt.pt').exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=300)
    stopped_at = max(logged_steps(run_dir))
    # the signal comes within a poll (0.2 s) of the first checkpoint (step 2): stopped at step 2 here, 14 steps from
    # the end (an evaluation and training.png every second step slow the run down)
    assert 2 <= stopped_at < 16, stdout[-2000:] + stderr[-2000:]
    assert torch.load(run_dir / 'ckpt.pt', weights_only=True)['step'] == stopped_at  # saved on the signal

    # 2. resume with the same command (the config file's hub start and scratch defaults are no contradiction)
    r = subprocess.run(train + ['--init_from=resume'], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert logged_steps(run_dir) == list(range(1, 17))  # each step once, in order, across the preemption
    ev = json.load(open(run_dir / 'eval.json'))
    assert [h['step'] for h in ev['history']] == [0, 8, 16]  # step 0 (the config's lm_eval_at_start), 8, the end
    assert (run_dir / 'training.png').is_file() and (run_dir / 'condensation.json').is_file()

    # 3. measure.py --ckpt out/ with its defaults: the folder's run, its own dataset, windows that fit its context
    stdout = run('measure.py', f'--ckpt={out}')
    assert 'seq_len: 64' in stdout  # the tiny model's context (n_positions), not the default 512
    measured = json.load(open(out / 'condensation.json'))
    runs = measured['runs'] if 'runs' in measured else [measured]
    assert [r['name'] for r in runs] == ['midtrain_gpt2_disp'] and runs[0]['seq_len'] == 64
    assert (out / 'trend.png').is_file()

    # 4. eval.py --ckpt out/: train.py's eval.json (with its history) is kept; --out elsewhere evaluates again
    before = (run_dir / 'eval.json').read_bytes()
    run('eval.py', f'--ckpt={out}', '--tasks=tiny_mc', f'--include_path={task_dir}', '--device=cpu')
    assert (run_dir / 'eval.json').read_bytes() == before
    run('eval.py', f'--ckpt={out}', '--tasks=tiny_mc', f'--include_path={task_dir}', '--device=cpu',
        f'--out={tmp_path / "evals"}')
    again = json.load(open(tmp_path / 'evals' / 'midtrain_gpt2_disp.json'))
    assert again['results']['tiny_mc']['acc,none'] == ev['results']['tiny_mc']['acc,none']  # the same final model

    # 5. the table, by the paper's rule (the best evaluation of the run's history)
    stdout = run('tables.py', str(run_dir / 'eval.json'), f'--table_out={tmp_path / "table2.md"}')
    assert 'dispersion' in stdout and (tmp_path / 'table2.md').is_file() and (tmp_path / 'table2.csv').is_file()

    # 6. hand the model on: an HF folder that transformers loads with the same logits
    run('export.py', f'--ckpt={run_dir}')
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(run_dir / 'hf').eval()
    ours, _ = load_checkpoint(str(run_dir))
    idx = torch.from_numpy(np.random.default_rng(0).integers(0, 401, (2, 16)))
    with torch.no_grad():
        diff = (hf(idx).logits - ours.eval()(idx)[0]).abs().max().item()
    assert diff <= 1e-5, diff
