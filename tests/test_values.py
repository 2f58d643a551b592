"""Every script refuses a value its key does not allow before any work: one line naming the key, the value and what
it allows, exit code 2, nothing written, no traceback; and --help lists each key's allowed values.

OMP_NUM_THREADS=1 python -m pytest -q tests/test_values.py

The allowed values are the annotations of each script's defaults block (configurator.py's Range, Choice, Device):
these tests run the scripts themselves, in this process (runpy, as `python X.py ...` runs them) and a few as
subprocesses, to show that each declaration is in place and is what the script checks.
"""
import os
import runpy
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ('train', 'measure', 'eval', 'sample', 'tables', 'bench', 'sweep', 'export')
NO_GPU = 99  # a CUDA index no machine has


def outputs(tmp):
    """Arguments that point every output of each script into tmp (none of them may appear)."""
    return {'train': [f'--out_dir={tmp}/out'], 'measure': [f'--out_dir={tmp}/out', f'--ckpt={tmp}/run'],
            'eval': [f'--ckpt={tmp}/run', f'--out={tmp}/out.json'], 'sample': [f'--ckpt={tmp}/run'],
            'tables': [f'--table_out={tmp}/table.md', f'{tmp}/run.json'], 'bench': [f'--json={tmp}/bench.json'],
            'sweep': [f'--out_root={tmp}/out', '--dry_run=True'],
            'export': [f'--ckpt={tmp}/run', f'--out_dir={tmp}/hf']}


def files(folder):
    """{path: (size, mtime_ns)} of everything under folder."""
    found = {}
    for dirpath, dirnames, names in os.walk(folder):
        for n in names + dirnames:
            st = os.stat(os.path.join(dirpath, n))
            found[os.path.relpath(os.path.join(dirpath, n), folder)] = (st.st_size, st.st_mtime_ns)
    return found


def run_script(script, args, monkeypatch, capsys):
    """`python <script>.py args` in this process -> (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, 'argv', [f'{script}.py', *args])
    code = 0
    try:
        runpy.run_path(os.path.join(ROOT, f'{script}.py'), run_name='__main__')
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(script, args, key, tmp_path, monkeypatch, capsys):
    """Run script with a bad value for key: exit 2, one `error: --key=...` line, nothing printed or written."""
    monkeypatch.chdir(tmp_path)
    before = files(tmp_path)
    code, out, err = run_script(script, [*args, *outputs(tmp_path)[script]], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f'error: --{key}='), (code, err)
    assert out == '' and 'Traceback' not in err
    assert files(tmp_path) == before  # no out_dir, no file
    return lines[0]


# (script, bad argument): the key is the argument's
ZERO_OR_NEGATIVE = [
    ('train', '--batch_size=0'), ('train', '--block_size=-1'), ('train', '--max_iters=0'),
    ('train', '--eval_interval=0'), ('train', '--log_interval=0'), ('train', '--eval_iters=0'),
    ('train', '--gradient_accumulation_steps=0'), ('train', '--condensation_samples=0'),
    ('train', '--snapshot_interval=-1'), ('train', '--lm_eval_interval=-5'), ('train', '--max_tokens=-1'),
    ('train', '--learning_rate=-1e-3'), ('train', '--warmup_iters=-1'), ('train', '--n_layer=0'),
    ('train', '--n_head=0'), ('train', '--mlp_hidden=0'), ('train', '--reg_max_tokens=0'), ('train', '--seed=-1'),
    ('train', '--active_forgetting_every=-1'), ('train', '--reg_tau=0'), ('train', '--kd_temperature=0'),
    ('train', '--grad_clip=-1'), ('train', '--dropout=1.0'), ('train', '--beta2=1.0'), ('train', '--reg_clamp=0'),
    ('train', '--warmup_frac=1.5'),
    ('measure', '--num_samples=0'), ('measure', '--seq_len=0'), ('measure', '--seq_len=1'),
    ('measure', '--batch_size=0'), ('measure', '--seed=-1'),
    ('eval', '--batch_size=0'), ('eval', '--seed=-1'),
    ('sample', '--num_samples=0'), ('sample', '--max_new_tokens=-1'), ('sample', '--top_k=-1'),
    ('sample', '--temperature=-0.5'),
    ('bench', '--steps=0'), ('bench', '--warmup=0'), ('bench', '--repeats=0'), ('bench', '--batch_size=0'),
    ('bench', '--block_size=0'), ('bench', '--vocab_size=0'), ('bench', '--reg_tau=0'),
    ('sweep', '--nproc=0'), ('sweep', '--seeds=-1'), ('sweep', '--seeds=1,-2'),
]
UNKNOWN_DTYPE = [('train', '--dtype=float8'), ('measure', '--dtype=float16'), ('eval', '--dtype=float8'),
                 ('bench', '--dtype=fp8'), ('export', '--dtype=float8')]
NEGATIVE_LM_EVAL = [('eval', '--limit=-1'), ('eval', '--limit=-0.5'), ('eval', '--num_fewshot=-1'),
                    ('train', '--eval_limit=-1')]
BAD_CHOICES = [
    ('train', '--reg=dispersoin'), ('train', '--reg_loc=middle'), ('train', '--reg_impl=fast'),
    ('train', '--grad_accum_reduction=max'), ('train', '--parallel=zero3'), ('train', '--arch=llama'),
    ('measure', '--hf_dataset=nope'), ('measure', '--device_map=everywhere'),
    ('eval', '--ttest=paired'), ('eval', '--batch_size=big'),
    ('tables', '--ttest=paired'), ('tables', '--select=last'),
    ('bench', '--regs=dispersion,nope'), ('bench', '--reg_impl=auto,fast'), ('bench', '--arch=llama'),
    ('sweep', '--table=7'), ('sweep', '--family=gpt3'),
]
DEVICE_SCRIPTS = ('train', 'measure', 'eval', 'sample', 'bench')


@pytest.mark.parametrize('script, arg', ZERO_OR_NEGATIVE + UNKNOWN_DTYPE + NEGATIVE_LM_EVAL + BAD_CHOICES)
def test_a_value_not_allowed_is_refused_up_front(script, arg, tmp_path, monkeypatch, capsys):
    key, value = arg[2:].split('=', 1)
    line = refused(script, [arg], key, tmp_path, monkeypatch, capsys)
    assert 'must be' in line  # and what is allowed


@pytest.mark.parametrize('script', DEVICE_SCRIPTS)
@pytest.mark.parametrize('device', [f'cuda:{NO_GPU}', 'tpu', 'cuda:x'])
def test_a_device_this_machine_lacks_is_refused_and_named(script, device, tmp_path, monkeypatch, capsys):
    line = refused(script, [f'--device={device}'], 'device', tmp_path, monkeypatch, capsys)
    assert line.startswith(f"error: --device='{device}': ")
    if device.startswith('cuda') and device != 'cuda:x':  # what the machine has instead
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        assert (f"has {count} CUDA device" if count else "no CUDA device: use cpu") in line
    else:
        assert "'cuda:N'" in line


def test_the_device_message_says_what_the_machine_has(monkeypatch, capsys):
    """On a machine with one GPU (torch's answers faked): cuda and cuda:0 are fine, cuda:7 is told there is cuda:0."""
    from configurator import Device, configure
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    ns = {'__annotations__': {'device': Device()}, 'device': 'auto'}
    for good in ('auto', 'cpu', 'cuda', 'cuda:0'):
        configure(ns, argv=[f'--device={good}'])
    with pytest.raises(SystemExit) as e:
        configure(ns, argv=['--device=cuda:7'])
    assert e.value.code == 2
    assert capsys.readouterr().err == "error: --device='cuda:7': this machine has 1 CUDA device (cuda:0)\n"
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)
    with pytest.raises(SystemExit):
        configure(ns, argv=['--device=cuda'])
    assert capsys.readouterr().err == "error: --device='cuda': this machine has no CUDA device: use cpu\n"


@pytest.fixture(scope='module')
def good_run(tmp_path_factory):
    """A valid train.py checkpoint (a tiny GPT-2 on byte tokens), to show a bad device never blames it."""
    from model import GPT, GPTConfig
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=257, n_layer=1, n_head=2, n_embd=16))
    run = tmp_path_factory.mktemp('good_run')
    torch.save({'arch': model.arch, 'model_args': asdict(model.config), 'model': model.state_dict(),
                'optimizer': {}, 'step': 1, 'config': {'seed': 1},
                'data_meta': {'tokenizer': 'byte', 'dtype': 'uint16', 'vocab_size': 257, 'eot_token': 256}},
               run / 'ckpt.pt')
    return run


@pytest.mark.parametrize('script', ['sample', 'measure', 'eval'])
def test_a_bad_device_is_named_before_a_good_checkpoint_is_read(script, good_run, tmp_path, monkeypatch, capsys):
    before = files(good_run)
    monkeypatch.chdir(tmp_path)
    extra = {'measure': [f'--out_dir={tmp_path}/out'], 'eval': [f'--out={tmp_path}/out.json']}.get(script, [])
    code, out, err = run_script(script, [f'--ckpt={good_run}', f'--device=cuda:{NO_GPU}', *extra], monkeypatch,
                                capsys)
    assert code == 2 and err.startswith(f"error: --device='cuda:{NO_GPU}': ") and 'checkpoint' not in err, err
    assert files(good_run) == before and files(tmp_path) == {}


def test_cross_key_shapes_are_refused_before_out_dir(tmp_path, monkeypatch, capsys):
    """A scratch model whose heads do not divide its width: refused before out_dir is claimed, not by model.py
    after it."""
    monkeypatch.chdir(tmp_path)
    for script, args in (('train', ['--n_embd=100', f'--out_dir={tmp_path}/out']),
                         ('train', ['--arch=qwen3', '--n_head=6', '--n_kv_head=4', f'--out_dir={tmp_path}/out']),
                         ('bench', ['--n_embd=100', f'--json={tmp_path}/b.json'])):
        code, out, err = run_script(script, args, monkeypatch, capsys)
        assert code == 2 and err.startswith('error: n_') and 'multiple of' in err and len(err.splitlines()) == 1
        assert files(tmp_path) == {}


@pytest.mark.parametrize('script, argv, key', [
    ('train', ['--eval_interval=0'], 'eval_interval'),
    ('sweep', ['--table=7'], 'table'),
    ('tables', ['--select=last'], 'select'),
])  # scripts that read their config before importing torch: each of the others is run in this process above
def test_subprocess_exit_code_and_no_traceback(script, argv, key, tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, f'{script}.py'), *argv, *outputs(tmp_path)[script]],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr and r.stdout == ''
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: --{key}='), r.stderr
    assert files(tmp_path) == {}


def test_a_config_file_value_is_checked_too(tmp_path, monkeypatch, capsys):
    (tmp_path / 'bad.py').write_text("batch_size = 0\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_script('train', [str(tmp_path / 'bad.py'), f'--out_dir={tmp_path}/out'], monkeypatch, capsys)
    assert code == 2 and err == 'error: --batch_size=0: must be >= 1\n'
    # the command line's value is the one checked: a bad value a file sets and the command line replaces is fine
    code, out, _ = run_script('train', [str(tmp_path / 'bad.py'), '--batch_size=2', '--dry_run=True',
                                        f'--out_dir={tmp_path}/out'], monkeypatch, capsys)
    assert code == 0 and '"batch_size": 2' in out and not (tmp_path / 'out').exists()


# per script: keys whose --help line must show their allowed values
HELP = {
    'train': {'batch_size': '>= 1', 'dtype': "one of 'auto', 'float32', 'bfloat16', 'float16'",
              'reg': "'none', 'dispersion'", 'device': "'cuda:N'", 'eval_limit': 'None, >= 0',
              'reg_clamp': '> 0 and < 1', 'parallel': "one of 'ddp', 'fsdp'"},
    'measure': {'num_samples': '>= 1', 'seq_len': '>= 2', 'dtype': "one of 'float32', 'bfloat16'",
                'hf_dataset': "one of '', 'wikitext', 'pubmed_qa', 'imdb', 'squad'", 'device': "'cuda:N'"},
    'eval': {'limit': '>= 0', 'num_fewshot': '>= 0', 'batch_size': "int or str, >= 1, one of 'auto'",
             'dtype': "one of 'float32', 'bfloat16', 'float16'", 'ttest': "one of 'student', 'welch'",
             'device': "'cuda:N'"},
    'sample': {'num_samples': '>= 1', 'temperature': '>= 0', 'top_k': '>= 0', 'device': "'cuda:N'"},
    'tables': {'ttest': "one of 'student', 'welch'", 'select': "one of '', 'best', 'final'"},
    'bench': {'steps': '>= 1', 'regs': "a comma list of 'dispersion'", 'reg_impl': "'auto', 'reference', 'tiled'",
              'device': "'cuda:N'", 'dtype': "'float16'"},
    'sweep': {'table': 'one of 2, 3, 4, 5', 'family': "one of 'gpt2', 'gpt2m'", 'seeds': 'int or list, >= 0',
              'nproc': '>= 1'},
    'export': {'dtype': "one of 'float32', 'bfloat16', 'float16'"},
}


@pytest.mark.parametrize('script', SCRIPTS)
def test_help_lists_each_key_with_its_allowed_values(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_script(script, ['--help'], monkeypatch, capsys)
    assert code == 0 and err == ''
    lines = {line.split('=')[0].strip(): line for line in out.splitlines()[1:]}
    for key, allowed in HELP[script].items():
        assert allowed in lines[f'--{key}'], lines[f'--{key}']
    assert files(tmp_path) == {}
