"""Every experiment config resolves with dry_run=True, offline, in seconds, and derives what the paper states:
train.py configs through train.py, measure.py configs (config/measure_*.py) through measure.py.

python -m pytest -q tests/test_configs.py
"""
import glob
import json
import re
import os
import runpy
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'config', '*.py')))
MEASURE_CONFIGS = [p for p in ALL_CONFIGS if os.path.basename(p).startswith('measure_')]
CONFIGS = [p for p in ALL_CONFIGS if p not in MEASURE_CONFIGS]  # train.py's


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


def resolve_measure(path, *overrides, capsys):
    """measure.py with dry_run=True on one config, in this process: -> {config, models, out_dir}, as printed."""
    argv = sys.argv
    sys.argv = ['measure.py', path, '--dry_run=True', *overrides]
    try:
        runpy.run_path(os.path.join(ROOT, 'measure.py'), run_name='__main__')  # returns: no SystemExit
    finally:
        sys.argv = argv
    return json.loads(capsys.readouterr().out)


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
    """Every document a config's header names (a *.md file) is one a user of the repository has."""
    for path in ALL_CONFIGS:
        with open(path) as f:
            for doc in re.findall(r'[\w./-]+\.md\b', f.read()):
                assert os.path.isfile(os.path.join(ROOT, doc)), (path, doc)


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


# -----------------------------------------------------------------------------
# measure.py's configs: one command per observation figure, with the official hub ids

QWEN2_5 = [f'Qwen/Qwen2.5-{s}' for s in ('0.5B', '1.5B', '3B', '7B', '14B', '32B', '72B')]
FAMILIES = {  # the lists of the official README (github.com/KrishnaswamyLab/LM-Dispersion)
    'measure_gpt2': ['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl'],
    'measure_qwen1': [f'Qwen/Qwen-{s}' for s in ('1_8B', '7B', '14B', '72B')],
    'measure_qwen2_5': QWEN2_5,
    'measure_qwen3': [f'Qwen/Qwen3-{s}' for s in ('0.6B', '1.7B', '4B', '8B', '14B', '32B')],
    'measure_bloom': [f'bigscience/bloom-{s}' for s in ('560m', '1b1', '1b7', '3b', '7b1')],
    'measure_distill_qwen2_5': ['Qwen/Qwen2.5-Math-1.5B', 'Qwen/Qwen2.5-Math-7B', 'Qwen/Qwen2.5-14B', 'Qwen/Qwen2.5-32B']
    + [f'deepseek-ai/DeepSeek-R1-Distill-Qwen-{s}' for s in ('1.5B', '7B', '14B', '32B')],
}


@pytest.mark.parametrize('path', MEASURE_CONFIGS, ids=lambda p: os.path.basename(p))
def test_measure_config_resolves_offline_with_the_official_recipe(path, capsys):
    """Each resolves offline without reading or writing anything, measures into out-measure/<its name>, with the
    authors' recipe: 100 windows of wikitext-103 (or a Figure S2 text source), float32; a base and the file."""
    name = os.path.basename(path)[:-3]
    r = resolve_measure(path, capsys=capsys)
    config = r['config']
    assert r['out_dir'] == config['out_dir'] == 'out-measure/' + name[len('measure_'):]
    figure7 = name == 'measure_figure7'  # the official plot_heatmaps.py: 10 texts x 1024 tokens, every eval checkpoint
    assert config['num_samples'] == (10 if figure7 else 100) and config['dtype'] == 'float32'
    assert config['dry_run'] is True and config['snapshots'] is figure7
    assert config['seq_len'] == (1024 if name in ('measure_pretrain_gpt2_mlp', 'measure_figure7') else 512)
    assert config['hf_dataset'] in ('wikitext', 'pubmed_qa', 'imdb', 'squad')
    assert config['trust_remote_code'] is False  # opt-in on the command line only, never in a config
    assert r['models'] and len(set(r['models'])) == len(r['models'])
    bases = config_imports(path)
    assert len(bases) <= 1
    if bases:
        base = resolve_measure(os.path.join(ROOT, 'config', bases[0] + '.py'), capsys=capsys)
        assert config_imports(os.path.join(ROOT, 'config', bases[0] + '.py')) == []
        assert {k for k in config if config[k] != base['config'][k]} == {'out_dir', 'hf_dataset'}


def test_one_measure_config_per_observation_figure(capsys):
    names = {os.path.basename(p)[:-3] for p in MEASURE_CONFIGS}
    assert set(FAMILIES) | {'measure_gpt2_pubmed_qa', 'measure_gpt2_imdb', 'measure_gpt2_squad',
                            'measure_olmo3_stages', 'measure_pretrain_gpt2_mlp', 'measure_figure7'} == names
    for name, models in FAMILIES.items():  # the official hub ids, in order of size
        assert resolve_measure(os.path.join(ROOT, 'config', name + '.py'), capsys=capsys)['models'] == models, name
    pairs = resolve_measure(os.path.join(ROOT, 'config', 'measure_distill_qwen2_5.py'), capsys=capsys)['config']
    assert pairs['pairs'] is True and resolve_measure(os.path.join(ROOT, 'config', 'measure_gpt2.py'),
                                                      capsys=capsys)['config']['pairs'] is False
    s2 = {n: resolve_measure(os.path.join(ROOT, 'config', f'measure_gpt2_{n}.py'), capsys=capsys)
          for n in ('pubmed_qa', 'imdb', 'squad')}
    assert {n: (r['config']['hf_dataset'], r['models']) for n, r in s2.items()} == \
        {n: (n, FAMILIES['measure_gpt2']) for n in s2}
    olmo = resolve_measure(os.path.join(ROOT, 'config', 'measure_olmo3_stages.py'), capsys=capsys)['models']
    assert olmo[0] == 'allenai/Olmo-3-1025-7B@stage1-step0' and olmo[-1] == 'allenai/Olmo-3-1025-7B'
    assert 'allenai/Olmo-3-1025-7B@stage1-step*00000' in olmo  # a revision pattern, listed when measuring
    fig3 = resolve_measure(os.path.join(ROOT, 'config', 'measure_pretrain_gpt2_mlp.py'), capsys=capsys)
    assert fig3['models'] == [f'out/pretrain_gpt2_mlp{w}' for w in (64, 256, 1024, 4096)]
    assert fig3['config']['hf_dataset'] == 'wikitext'
    assert {f'out/pretrain_gpt2_mlp{w}' for w in (64, 256, 1024, 4096)} == \
        {resolve(os.path.join(ROOT, 'config', f'pretrain_gpt2_mlp{w}.py'), capsys=capsys)['out_dir']
         for w in (64, 256, 1024, 4096)}  # the folders train.py writes


def assigned_names(path):
    """The names a config file assigns at its top level, those of the bases it star-imports included: read from its
    source (ast), the reference for what configurator.configure counts as given."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module.startswith('config.') and node.names[0].name == '*':
            names |= assigned_names(os.path.join(ROOT, 'config', node.module.split('.', 1)[1] + '.py'))
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def test_given_keys_are_what_each_config_assigns(capsys, monkeypatch):
    """train.py checks the keys given against a checkpoint it resumes: for every config they are the names the file
    and its base assign, plus the command line's, and none of train.py's defaults besides."""
    import configurator
    seen = []

    def configure(namespace, *args, given=None, **kwargs):
        result = configurator_configure(namespace, *args, given=given, **kwargs)
        seen.append(set(given))
        return result
    configurator_configure = configurator.configure
    monkeypatch.setattr(configurator, 'configure', configure)  # train.py imports it when it runs
    for path in CONFIGS:
        resolve(path, '--seed=5', capsys=capsys)
        assert seen.pop() == assigned_names(path) | {'dry_run', 'seed'}, path


def test_figure7_measures_the_baseline_and_the_largest_lambda_run_at_every_eval_checkpoint(capsys):
    """Figure 7 as the official plot_heatmaps.py: the baseline and the dispersion run with the largest lambda <= 1,
    each at every saved evaluation checkpoint, which config/midtrain_gpt2.py keeps (step 0 and every 306 steps)."""
    r = resolve_measure(os.path.join(ROOT, 'config', 'measure_figure7.py'), capsys=capsys)
    assert r['config']['ckpt'] == ['out/midtrain_gpt2', 'out/midtrain_gpt2_disp_lambda1p0']
    disp = resolve(os.path.join(ROOT, 'config', 'midtrain_gpt2_disp_lambda1p0.py'), capsys=capsys)
    base = resolve(os.path.join(ROOT, 'config', 'midtrain_gpt2.py'), capsys=capsys)
    assert disp['reg'] == 'dispersion' and disp['reg_coeff'] == 1.0 and disp['out_dir'] == r['config']['ckpt'][1]
    assert base['reg'] == 'none' and base['out_dir'] == r['config']['ckpt'][0]
    assert base['snapshot_interval'] == base['lm_eval_interval'] == 306
