"""bench.py end to end on a tiny 2-layer GPT on CPU: it runs every variant (no regularizer, the five
regularizers, Hugging Face + the official loss) and writes the documented JSON with consistent numbers.

python -m pytest -q tests/test_bench.py
"""
import json
import os
import subprocess
import sys

import pytest

import losses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B, T, N_LAYER, N_EMBD, VOCAB = 2, 32, 2, 32, 256


def run_bench(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, os.path.join(ROOT, 'bench.py'), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_bench_writes_the_documented_json(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_bench(f'--n_layer={N_LAYER}', '--n_head=2', f'--n_embd={N_EMBD}', f'--block_size={T}',
                     f'--batch_size={B}', f'--vocab_size={VOCAB}', '--device=cpu', '--steps=1', '--warmup=1',
                     '--repeats=2', '--reg_impl=tiled', f'--json={out}')  # at T = 32 'auto' runs the definition
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    variants = ['none', *losses.REGULARIZERS, 'hf']
    for key in ('tokens_per_s', 'ms_per_step', 'peak_mem_mb'):
        assert sorted(result[key]) == sorted(variants), key
    for key in ('overhead', 'reg_saved_mb'):
        assert sorted(result[key]) == sorted(variants[1:]), key
    # peak memory holds at least the weights, the gradients and AdamW's two moments, 4 float32 copies of
    # the parameters: tied embedding V*d, positions T*d, per block 12 d^2 + 13 d, final norm 2 d
    n_params = VOCAB * N_EMBD + T * N_EMBD + N_LAYER * (12 * N_EMBD ** 2 + 13 * N_EMBD) + 2 * N_EMBD
    assert min(result['peak_mem_mb'].values()) >= 4 * 4 * n_params / 2 ** 20
    # the official loss keeps every intermediate [B, T, T] matrix for backward, our fast path far less
    assert result['reg_saved_mb']['dispersion'] < result['reg_saved_mb']['hf']
    assert result['config']['n_layer'] == N_LAYER and result['machine']['device'] == 'cpu'
    assert len(result['round_ms']['none']) == 2


def test_bench_times_the_definition_and_the_fast_path(tmp_path):
    """--reg_impl=reference,tiled times each regularizer both ways, as variants 'name:impl'. At T = 256 the
    definition keeps several [B, T, T] float32 matrices for backward (2 sequences x 2 layers: 1 MiB each), the
    tiled path keeps its one kept weight matrix of that size and O(B T d) besides."""
    out = tmp_path / 'bench.json'
    proc = run_bench('--n_layer=2', '--n_head=2', '--n_embd=32', '--block_size=256', '--batch_size=1',
                     f'--vocab_size={VOCAB}', '--device=cpu', '--steps=1', '--warmup=1', '--repeats=1',
                     '--regs=dispersion', '--reg_impl=reference,tiled', '--hf=False', f'--json={out}')
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert sorted(result['ms_per_step']) == ['dispersion:reference', 'dispersion:tiled', 'none']
    saved = result['reg_saved_mb']
    assert saved['dispersion:tiled'] < saved['dispersion:reference'] / 2, saved


def test_bad_regularizer_is_a_config_error(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_bench('--regs=dispersion,nope', f'--json={out}')
    assert proc.returncode == 2
    expected = (f"error: --regs='dispersion,nope': 'nope' must be one of "
                f"{', '.join(map(repr, losses.REGULARIZERS))}")
    assert proc.stderr.strip().splitlines()[-1] == expected
    assert not out.exists()
