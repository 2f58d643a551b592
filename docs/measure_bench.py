"""
Benchmark (not a test): measure.py against the authors' `embedding-condensation` package (PyPI) on the same
model and the same token windows: per-layer agreement, wall time and peak memory, each side in its own process.
Results and the exact commands are in docs/measure_bench.md.

    pip install --no-deps embedding-condensation     # --no-deps keeps your torch; see measure_bench.md
    python docs/measure_bench.py                      # random 12 x 768 GPT-2, 100 windows x 512 tokens, CPU
    python docs/measure_bench.py --n_layer=6 --n_embd=384 --device=cuda
    mkdir -p out/before && git archive <commit> | tar -x -C out/before # an older measure.py, timed in the same run:
    python docs/measure_bench.py --n_embd=384 --num_samples=48 --baseline=out/before/measure.py --repeats=2

The package is fed the windows through `texts=` and a stand-in tokenizer that returns, for text "i", window i
(the package only ever calls tokenizer(text, return_tensors='pt', truncation=True, max_length=...)), so both
sides see identical token ids; it gets `transformers.AutoModel`, as its README shows. measure.py runs as a user
would run it (our model.py, heatmap and trend PNGs included).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configurator import config_keys, configure  # noqa: E402  (needs ROOT on the path)

# -----------------------------------------------------------------------------
n_layer = 12          # the real shape of gpt2 (124M), random weights
n_embd = 768
num_samples = 100     # the paper's repetitions
seq_len = 512         # the paper's max_length
batch_size = 8        # measure.py's windows per forward pass
device = 'cpu'
seed = 0
workdir = ''          # where the model, tokens and outputs go; default: a new temporary directory
sides = 'both'        # 'measure': time measure.py alone (prepare and run it; no comparison)
baseline = ''         # another measure.py (e.g. an older commit's), timed beside this one on the same windows
repeats = 1           # runs of each side, in turn (ours, baseline, package, ours, ...); the fastest is reported
role = 'main'         # 'package': internal, the child process that runs the package
# -----------------------------------------------------------------------------
CONFIG_KEYS = config_keys(globals())  # the names above are the keys; configured when run as a script


def run_package(workdir):
    """Child process: the package's measure_embedding_condensation on the prepared windows."""
    import importlib.util
    import types
    import torch
    # the package imports nltk and datasets at the top but uses them only to sample text, which texts= bypasses;
    # where they are not installed, stand-ins let it import (they are never called here)
    if importlib.util.find_spec('nltk') is None:
        nltk = types.ModuleType('nltk')
        nltk.tokenize = types.ModuleType('nltk.tokenize')
        nltk.tokenize.word_tokenize = lambda s: s.split()
        sys.modules.update({'nltk': nltk, 'nltk.tokenize': nltk.tokenize})
    if importlib.util.find_spec('datasets') is None:
        sys.modules['datasets'] = types.ModuleType('datasets')
        sys.modules['datasets'].load_dataset = None
    from embedding_condensation import measure_embedding_condensation
    from transformers import AutoModel
    model = AutoModel.from_pretrained(os.path.join(workdir, 'model'), dtype=torch.float32).to(device).eval()
    windows = torch.from_numpy(np.load(os.path.join(workdir, 'windows.npy')))
    tokenizer = lambda text, **kwargs: {'input_ids': windows[int(text)][None]}  # (1, T)
    t0 = time.perf_counter()
    result = measure_embedding_condensation(model, tokenizer, texts=[str(i) for i in range(len(windows))],
                                            repetitions=len(windows), max_length=seq_len, plot=False,
                                            save_path=None, show_progress=False)
    seconds = time.perf_counter() - t0
    mats = result.cossim_by_layer                      # (num_states, T, T), averaged over the windows
    out = dict(seconds_in_call=seconds, mean_cossim=mats.mean(axis=(1, 2)).astype(float).tolist(),
               histograms=[np.histogram(m.ravel(), bins=128, range=(-1, 1), density=True)[0].tolist() for m in mats])
    with open(os.path.join(workdir, 'package.json'), 'w') as f:
        json.dump(out, f)


def child(cmd):
    """Run cmd; -> (wall seconds, peak RSS in MiB of that process alone, from wait4's rusage)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=dict(os.environ, MPLBACKEND='Agg'))
    _, status, usage = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(cmd[:3])} ... failed")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def main(workdir):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    import condensation
    import measure
    os.makedirs(workdir, exist_ok=True)
    model_dir, data_dir = os.path.join(workdir, 'model'), os.path.join(workdir, 'data')
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=max(1, n_embd // 64), n_positions=1024)
    GPT2LMHeadModel(cfg).save_pretrained(model_dir)
    # token ids drawn uniformly from GPT-2's vocabulary (no tokenizer download needed; the metric does not care)
    os.makedirs(data_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, cfg.vocab_size, 4 * num_samples * seq_len).astype(np.uint16)
    tokens.tofile(os.path.join(data_dir, 'val.bin'))
    with open(os.path.join(data_dir, 'meta.json'), 'w') as f:
        json.dump(dict(tokenizer='gpt2', dtype='uint16', vocab_size=cfg.vocab_size, eot_token=50256), f)
    windows, starts = measure.token_windows(tokens, num_samples, seq_len, seed)  # what measure.py will draw
    np.save(os.path.join(workdir, 'windows.npy'), windows)

    def measure_cmd(script, out):  # the same windows, the same settings, whichever measure.py
        return [sys.executable, script, f'--init_from={model_dir}', f'--dataset={data_dir}',
                f'--num_samples={num_samples}', f'--seq_len={seq_len}', f'--batch_size={batch_size}',
                f'--device={device}', f'--seed={seed}', f'--out_dir={out}']
    ours_dir, base_dir = os.path.join(workdir, 'ours'), os.path.join(workdir, 'baseline')
    cmds = {'measure_py': measure_cmd(os.path.join(ROOT, 'measure.py'), ours_dir)}
    if baseline:
        cmds['baseline'] = measure_cmd(os.path.abspath(baseline), base_dir)
    if sides != 'measure':
        cmds['package'] = [sys.executable, os.path.abspath(__file__), '--role=package', f'--workdir={workdir}',
                           f'--seq_len={seq_len}', f'--device={device}']
    results = {'measure_py': (os.path.join(ours_dir, 'condensation.json'), 'seconds'),
               'baseline': (os.path.join(base_dir, 'condensation.json'), 'seconds'),
               'package': (os.path.join(workdir, 'package.json'), 'seconds_in_call')}
    load_before = os.getloadavg()
    timings = {side: [] for side in cmds}
    for _ in range(repeats):  # in turn, so that a change in the machine's load hits every side alike
        for side, cmd in cmds.items():
            path, key = results[side]
            if side != 'package':  # measure.py keeps what its out_dir measured before: every run starts afresh
                shutil.rmtree(os.path.dirname(path), ignore_errors=True)
            print('$', ' '.join(cmd))
            wall, rss = child(cmd)
            with open(path) as f:
                in_call = json.load(f)[key]
            timings[side].append(dict(wall_s=round(wall, 2), seconds_in_call=round(in_call, 2), peak_rss_mib=round(rss)))
    best = {side: min(runs, key=lambda r: r['wall_s']) for side, runs in timings.items()}
    setting = dict(n_layer=n_layer, n_embd=n_embd, num_samples=num_samples, seq_len=seq_len, batch_size=batch_size,
                   device=device, torch=torch.__version__, cpus=os.cpu_count(), torch_threads=torch.get_num_threads(),
                   omp_num_threads=os.environ.get('OMP_NUM_THREADS'), repeats=repeats,
                   loadavg_before=load_before, loadavg_after=os.getloadavg())
    with open(os.path.join(ours_dir, 'condensation.json')) as f:
        ours = json.load(f)
    assert ours['starts'] == starts, "measure.py drew other windows than the package was given"
    ratio = lambda a, b, key: round(best[a][key] / best[b][key], 2)
    report = dict(setting=setting, **best, all_runs=timings)
    if baseline:
        with open(os.path.join(base_dir, 'condensation.json')) as f:
            before = json.load(f)
        report.update(baseline_path=os.path.abspath(baseline),
                      max_abs_diff_baseline=float(np.abs(np.subtract(ours['mean_cossim'], before['mean_cossim'])).max()))
    if sides == 'measure':
        print(json.dumps({k: v for k, v in report.items() if k != 'all_runs'}, indent=1))
        return
    with open(os.path.join(workdir, 'package.json')) as f:
        pkg = json.load(f)
    diff = np.abs(np.array(ours['mean_cossim']) - np.array(pkg['mean_cossim']))
    hist_diff = np.abs(np.array(ours['histograms']) - np.array(pkg['histograms']))
    entries_moved = hist_diff.sum(axis=1) * (2 / 128) * seq_len ** 2 / 2  # entries that changed bin, per layer
    rho, tau = condensation.rank_correlations(pkg['mean_cossim'])
    report.update(
        speedup_wall=ratio('package', 'measure_py', 'wall_s'),
        speedup_in_call=ratio('package', 'measure_py', 'seconds_in_call'),
        memory_ratio=ratio('package', 'measure_py', 'peak_rss_mib'),
        **(dict(speedup_wall_baseline=ratio('package', 'baseline', 'wall_s'),
                speedup_in_call_baseline=ratio('package', 'baseline', 'seconds_in_call')) if baseline else {}),
        max_abs_diff_mean_cossim=float(diff.max()), per_layer_abs_diff=diff.tolist(),
        max_abs_diff_hist_density=float(hist_diff.max()), max_entries_moved_bin=float(entries_moved.max()),
        spearman=dict(ours=ours['spearman'], package=rho), kendall=dict(ours=ours['kendall'], package=tau),
        mean_cossim=dict(ours=ours['mean_cossim'], package=pkg['mean_cossim']))
    with open(os.path.join(workdir, 'bench.json'), 'w') as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k not in ('mean_cossim', 'per_layer_abs_diff')}, indent=1))


if __name__ == '__main__':
    configure(globals(), keys=CONFIG_KEYS)
    workdir = workdir or tempfile.mkdtemp(prefix='measure_bench_')
    run_package(workdir) if role == 'package' else main(workdir)
