"""sweep.py continues an interrupted sweep: a real SIGKILL of the sweep's process group while its second run trains,
then the same command again (run in the test's process; its train.py runs are subprocesses either way): the
finished run is skipped and its files left as they were, the interrupted one resumes from its checkpoint, the
missing ones start, and the table is written.

OMP_NUM_THREADS=1 python -m pytest -q tests/test_sweep.py

The runs are Table 3's two paper configs (seeds 1 and 2: four runs) made tiny with --train_args: a tiny local GPT-2
for init_from, byte tokens for data, lm-eval on a one-question local task YAML (the cheapest eval.json that is
lm-eval's own; no download), and no lm-eval during training.
"""
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time

import torch

from conftest import run_in_process
from test_train import ROOT, data_dir, metrics  # noqa: F401 (data_dir: a fixture)
from test_trust import ENV, hf_gpt2_dir, task_dir  # noqa: F401 (task_dir: a fixture)

MAX_ITERS = 40


def files(folder):
    """{name: (mtime_ns, sha256)} of every file under folder."""
    found = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(dirpath, n)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, folder)] = (os.stat(path).st_mtime_ns, hashlib.sha256(f.read()).hexdigest())
    return found


def test_killed_sweep_continues(tmp_path, data_dir, task_dir):
    hf_gpt2_dir(tmp_path / 'hf')
    out_root = tmp_path / 'out'
    train_args = shlex.join([
        f'--dataset={data_dir}', f"--init_from={tmp_path / 'hf'}", '--block_size=32', '--batch_size=2',
        '--gradient_accumulation_steps=1', '--max_tokens=0', f'--max_iters={MAX_ITERS}', '--eval_interval=20',
        '--eval_iters=1', '--log_interval=1', '--condensation_samples=2', '--device=cpu', '--compile=False',
        '--dtype=float32', '--eval_tasks=tiny_mc', f'--eval_include_path={task_dir}', '--eval_limit=1',
        '--lm_eval_interval=0', '--lm_eval_at_start=False'])
    cmd = [sys.executable, 'sweep.py', '--table=3', '--seeds=1,2', '--nproc=1', f'--out_root={out_root}',
           f'--train_args={train_args}']
    runs = [out_root / f'midtrain_gpt2_disp_{where}_s{seed}' for where in ('early', 'late') for seed in (1, 2)]

    with open(tmp_path / 'first.log', 'w') as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 300
            while not (runs[1] / 'ckpt.pt').exists():  # the second run has saved once and trains on
                assert p.poll() is None and time.time() < deadline, (tmp_path / 'first.log').read_text()[-3000:]
                time.sleep(0.01)
        finally:
            os.killpg(p.pid, signal.SIGKILL)  # the sweep and the train.py it runs
            p.wait(timeout=60)
    assert (runs[0] / 'eval.json').exists() and not (runs[1] / 'eval.json').exists() and not runs[2].exists()
    killed_at = torch.load(runs[1] / 'ckpt.pt', weights_only=True)['step']
    assert 0 < killed_at < MAX_ITERS
    finished = files(runs[0])

    r = run_in_process(*cmd[1:], env={k: ENV[k] for k in ('OMP_NUM_THREADS', 'HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE')})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert f'done: {runs[0]} (eval.json exists)' in lines
    launched = [line for line in lines if ' train.py config/' in line]
    assert [line.endswith('--init_from=resume') for line in launched] == [True, False, False], launched
    assert files(runs[0]) == finished  # not rewritten, not even touched
    with open(runs[1] / 'run.json') as f:
        assert json.load(f)['resumed_from_step'] == killed_at
    for run in runs:
        assert [m['step'] for m in metrics(run) if 'train_loss' in m] == list(range(1, MAX_ITERS + 1)), run
        with open(run / 'eval.json') as f:
            assert 'tiny_mc' in json.load(f)['results']
    for run in runs[2:]:
        with open(run / 'run.json') as f:
            assert 'resumed_from_step' not in json.load(f)
    assert (out_root / 'table3.md').exists()
