"""Every training config in config/ trains and then resumes with its own config file: a tiny model and data in
place of the paper's (overrides of size and paths only), a couple of steps, then the same command with
--init_from=resume and more steps. A key that contradicts the checkpoint's model is still refused, by name.

OMP_NUM_THREADS=1 python -m pytest -q tests/test_resume_configs.py

train.py runs in this process (conftest.run_in_process): a subprocess costs seconds of imports per run, and there
are two runs per config. What a run leaves in the process (the out_dir lock, signal handlers, ...) is undone after it.
The figures a run draws are made but not rendered to PNG (rendering is four fifths of a tiny run's time, and
tests/test_measure.py covers them), so that the whole loop takes about a minute on 2 cores.
"""
import glob
import json
import os
import sys

import pytest
import torch

from conftest import run_in_process
from test_train import data_dir, metrics  # noqa: F401 (data_dir: a fixture, ~150 KB of byte tokens)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'config', '*.py')))
TRAINING = [n for n in CONFIGS if not n.startswith('measure_')]
FROM_HF = ('midtrain_', 'distill_')  # start from a hub model: here a tiny local HF dir of the same family
FROM_SCRATCH = ('pretrain_', 'demo')
# size, time and paths only; the method, schedule shape, parallel and every other key stay the config's
TINY = ['--block_size=32', '--batch_size=2', '--gradient_accumulation_steps=1', '--max_tokens=0', '--eval_iters=1',
        '--log_interval=1', '--eval_tasks=', '--condensation_samples=2', '--device=cpu', '--compile=False',
        '--dtype=float32', '--snapshot_interval=0']
SCRATCH_SIZE = {'gpt': ['--n_layer=2', '--n_head=2', '--n_embd=32'],
                'qwen3': ['--n_layer=2', '--n_head=2', '--n_kv_head=1', '--head_dim=16', '--n_embd=32',
                          '--mlp_hidden=64']}


def run_train(*argv):
    """train.py's command line in this process (conftest.run_in_process) -> its exit code (0 when it ends by
    itself); its stderr is printed, for the assertion messages that read capsys."""
    r = run_in_process('train.py', *argv)
    sys.stderr.write(r.stderr)
    return r.returncode


@pytest.fixture(autouse=True)
def no_rendering(monkeypatch):
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', lambda self, *args, **kwargs: None)


@pytest.fixture(scope='module')
def hf_dirs(tmp_path_factory):
    """Tiny random GPT-2 and Qwen3 models saved with save_pretrained (3 blocks: neither train.py's default 6 nor
    the demo's 4), and a GPT-2 teacher of another shape with the same vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen3Config, Qwen3ForCausalLM
    d = tmp_path_factory.mktemp('hf')
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=3, n_head=2)).save_pretrained(
        d / 'gpt2')
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        d / 'teacher')
    Qwen3ForCausalLM(Qwen3Config(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                 num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                 max_position_embeddings=64, tie_word_embeddings=True)).save_pretrained(d / 'qwen3')
    return {k: str(d / k) for k in ('gpt2', 'teacher', 'qwen3')}


def overrides(name, out_dir, data_dir, hf_dirs):
    """The first run's command line for config `name`, tiny; resume replaces its init_from."""
    args = [os.path.join(ROOT, 'config', f'{name}.py'), f'--dataset={data_dir}', f'--out_dir={out_dir}', *TINY]
    family = 'qwen3' if 'qwen3' in name else 'gpt'
    if name.startswith(FROM_HF):
        args.append(f"--init_from={hf_dirs['qwen3' if family == 'qwen3' else 'gpt2']}")
        if name.startswith('distill_'):
            args.append(f"--teacher={hf_dirs['teacher']}")
    else:
        args += SCRATCH_SIZE[family]
    return args


def test_every_training_config_is_covered():
    assert TRAINING and all(n.startswith(FROM_HF + FROM_SCRATCH) for n in TRAINING), TRAINING


@pytest.mark.parametrize('name', TRAINING)
def test_config_trains_then_resumes_with_its_own_file(name, tmp_path, data_dir, hf_dirs, capsys):
    out = tmp_path / 'run'
    first = overrides(name, out, data_dir, hf_dirs)
    assert run_train(*first, '--max_iters=2', '--eval_interval=2') == 0, capsys.readouterr().err[-2000:]
    again = [a for a in first if not a.startswith('--init_from=')]
    code = run_train(*again, '--init_from=resume', '--max_iters=4', '--eval_interval=2')
    assert code == 0, capsys.readouterr().err[-2000:]
    assert [m['step'] for m in metrics(out) if 'train_loss' in m] == [1, 2, 3, 4]
    with open(out / 'run.json') as f:
        record = json.load(f)
    assert record['resumed_from_step'] == 2 and record['config']['max_iters'] == 4
    assert torch.load(out / 'ckpt.pt', weights_only=True)['step'] == 4


def snapshot(folder):
    """{name: bytes} of the files in folder but the lock file (which a refused run opens)."""
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder)) if n != 'train.lock'}


def test_a_key_that_contradicts_the_checkpoint_is_refused_by_name(tmp_path, data_dir, hf_dirs, capsys):
    """On the command line or in a config file (which may import its base), and also when the value given is train.py's
    default: given is given. Refused on one line before anything in out_dir changes."""
    out = tmp_path / 'run'
    first = overrides('midtrain_gpt2_disp', out, data_dir, hf_dirs)
    assert run_train(*first, '--max_iters=2', '--eval_interval=2') == 0, capsys.readouterr().err[-2000:]
    capsys.readouterr()
    before = snapshot(out)
    again = [a for a in first[1:] if not a.startswith('--init_from=')] + ['--init_from=resume', '--max_iters=4']
    for lines, arg, given in [('', '--n_layer=8', '8'),
                              ('n_layer = 8\n', '', '8'),
                              ('n_layer = 6\n', '', '6'),  # train.py's own default, assigned: given all the same
                              ('n_embd = 32\nn_head = 4\n', '', None)]:  # agrees with n_embd, not with n_head
        config = tmp_path / 'resume_config.py'
        config.write_text('from config.midtrain_gpt2_disp import *\n' + lines)
        assert run_train(config, *again, *([arg] if arg else [])) == 1
        err = capsys.readouterr().err.strip().splitlines()[-1]
        key, value = ('n_head', '4') if given is None else ('n_layer', given)
        has = 2 if key == 'n_head' else 3
        assert err == (f"error: --{key}={value} contradicts the checkpoint, whose model has {key}={has} (on resume, "
                       f"leave the model's keys out or give the checkpoint's values)"), err
        assert snapshot(out) == before
    # the file's own keys and the checkpoint's values given again: it resumes
    config.write_text('from config.midtrain_gpt2_disp import *\nn_layer = 3\n')
    assert run_train(config, *again, '--n_embd=32') == 0, capsys.readouterr().err[-2000:]
    assert [m['step'] for m in metrics(out) if 'train_loss' in m] == [1, 2, 3, 4]
