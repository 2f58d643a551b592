"""Every experiment config resolves with dry_run=True, offline, in seconds, and derives what the paper states.

python -m pytest -q tests/test_configs.py
"""
import glob
import json
import os
import runpy
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'config', '*.py')))


def resolve(path, *overrides, capsys):
    """train.py with dry_run=True on one config, in this process; returns the printed resolved config."""
    argv = sys.argv
    sys.argv = ['train.py', path, '--dry_run=True', *overrides]
    try:
        with pytest.raises(SystemExit) as e:
            runpy.run_path(os.path.join(ROOT, 'train.py'), run_name='__main__')
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert e.value.code == 0, out
    return json.loads(out[out.index('{'):])


def test_there_is_a_config_for_every_experiment():
    names = {os.path.basename(p)[:-3] for p in CONFIGS}
    for family in ('gpt2', 'gpt2m', 'qwen3_0_6b', 'qwen3_1_7b'):  # Table 2
        for method in ('', '_noisy', '_forget', '_decor', '_l2', '_ortho', '_disp'):
            assert f'midtrain_{family}{method}' in names
    assert {'midtrain_gpt2_disp_early', 'midtrain_gpt2_disp_late', 'pretrain_qwen3_0_6b', 'pretrain_qwen3_0_6b_disp',
            'distill_gpt2_from_gpt2xl', 'demo'} <= names
    assert {f'pretrain_gpt2_mlp{w}' for w in (64, 256, 1024, 4096)} <= names


# what a method or ablation file may change relative to its family's base: its output folder and its method
METHOD_KEYS = {'out_dir', 'reg', 'reg_coeff', 'reg_tau', 'reg_loc', 'reg_max_tokens', 'reg_clamp',
               'noisy_embedding_alpha', 'active_forgetting_every', 'af_emb_lr', 'af_emb_warmup_frac', 'teacher',
               'kd_coeff', 'kd_temperature', 'mlp_hidden'}


def config_imports(path):
    """The config modules a config file imports (`from config.x import *`)."""
    with open(path) as f:
        return [line.split()[1].split('.', 1)[1] for line in f if line.startswith('from config.')]


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_resolves_offline_in_at_most_two_files(path, capsys):
    """Every config resolves offline, writes its own folder, and is readable in at most two files: itself and a
    base that imports nothing; against that base it changes only its output folder and its method."""
    config = resolve(path, capsys=capsys)
    name = os.path.basename(path)[:-3]
    assert config['out_dir'].endswith(name.replace('demo', 'out-demo'))
    bases = config_imports(path)
    assert len(bases) <= 1, bases
    if bases:
        base_path = os.path.join(ROOT, 'config', bases[0] + '.py')
        assert config_imports(base_path) == [], f"{bases[0]} imports another config"
        base = resolve(base_path, capsys=capsys)
        changed = {k for k in config if config[k] != base[k]}
        assert changed <= METHOD_KEYS, sorted(changed - METHOD_KEYS)
        assert 'out_dir' in changed


def test_no_config_cites_a_document_outside_the_repository():
    for path in CONFIGS:
        with open(path) as f:
            assert 'REFERENCE.md' not in f.read(), path


def test_derived_values_match_the_official_runs(capsys):
    c = resolve(os.path.join(ROOT, 'config', 'midtrain_gpt2_disp.py'), capsys=capsys)
    assert c['max_iters'] == 1526  # ceil(200M / 131,072), the official max_steps
    assert c['warmup_iters'] == 306  # ceil(0.2 * 1526)
    assert (c['reg'], c['reg_coeff'], c['reg_tau'], c['reg_loc'], c['reg_max_tokens']) == ('dispersion', 0.1, 1.0,
                                                                                            'all', 256)
    q = resolve(os.path.join(ROOT, 'config', 'midtrain_qwen3_1_7b_disp.py'), capsys=capsys)
    assert q['init_from'] == 'Qwen/Qwen3-1.7B' and q['block_size'] == 4096 and q['reg_clamp'] == 0.25
    assert q['max_iters'] == 1526 and q['noisy_embedding_alpha'] == 0.0
    n = resolve(os.path.join(ROOT, 'config', 'midtrain_qwen3_0_6b_noisy.py'), capsys=capsys)
    assert n['noisy_embedding_alpha'] == 5.0 and n['reg'] == 'none'
    t = resolve(os.path.join(ROOT, 'config', 'midtrain_gpt2_disp_tau0p5.py'), '--seed=3', capsys=capsys)
    assert t['reg_tau'] == 0.5 and t['reg_coeff'] == 0.1 and t['seed'] == 3
