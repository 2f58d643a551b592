"""
condensation.json and condensation.csv: the record of a measurement (the run dicts condensation.measure_run builds),
written, merged with what an out_dir measured before, read back and checked field by field. measure.py uses all of
it; train.py writes its end-of-run measurement with write_outputs. No torch here, and matplotlib only when figures
are drawn (write_outputs with draw=True imports figures.py then).

condensation.json holds one run as its dict, several as {"runs": [dict, ...]}; a run holds name, source, step,
modified, n_params, n_layers, num_samples, seq_len, windows ("kind:name"), seed, dtype, device, seconds, starts,
mean_cossim, spearman, kendall, mean_last_n, histograms, and with more measures than mean_cossim, `measures` and a
list per measure. condensation.csv: a row per run (csv_row).
"""

import csv
import io
import json
import os

import numpy as np

from atomic import atomic_write
from configurator import one_line


# -----------------------------------------------------------------------------
# outputs, each written through atomic_write (a crash leaves no half-written file); the figures: figures.py

def csv_row(run):
    """One CSV row per run; each measure beyond mean_cossim adds <name>_first, _last_1, _last_half, _all (the first
    hidden state, the last, the mean of the last n//2 + 1 as mean_last_half, the mean of all n)."""
    m = run['mean_cossim']
    row = dict(name=run['name'], step=run['step'], n_params=run.get('n_params'), n_layers=run['n_layers'],
               num_samples=run['num_samples'], seq_len=run['seq_len'], spearman=run['spearman'],
               kendall=run['kendall'], mean_first=m[0], mean_last_1=m[-1],
               mean_last_half=run['mean_last_n'][len(m) // 2], mean_all=run['mean_last_n'][-1])
    for name in run.get('measures', ['mean_cossim'])[1:]:
        v = run[name]
        row.update({f'{name}_first': v[0], f'{name}_last_1': v[-1],
                    f'{name}_last_half': float(np.mean(v[-(len(v) // 2 + 1):])), f'{name}_all': float(np.mean(v))})
    return row


def write_outputs(runs, out_dir, draw=True, pairs=False, rescue=False):
    """condensation.json and condensation.csv (after every model: an interrupted run keeps what it measured), then
    with draw the figures: figures.write_figures. rescue=True: if condensation.json cannot be written (a full disk,
    out_dir gone or replaced by a file), its content goes to a new file elsewhere and the OSError raised says where
    (atomic.atomic_write)."""
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError:
        if not rescue:
            raise  # with rescue, atomic_write fails below and keeps the numbers
    atomic_write(os.path.join(out_dir, 'condensation.json'),
                 json.dumps(runs[0] if len(runs) == 1 else {'runs': runs}, indent=1), rescue=rescue)
    rows = [csv_row(r) for r in runs]
    table = io.StringIO()  # runs measured with different measures: every column of any row, blank where absent
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), restval='')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(os.path.join(out_dir, 'condensation.csv'), table.getvalue())
    if draw:
        import figures  # matplotlib: only when drawing
        figures.write_figures(runs, out_dir, pairs=pairs)


def load_measured(path, full=True):
    """The runs of a condensation.json (or of the out_dir holding one) that someone may have handed us, checked
    field by field against what this file and figures.py read: a field of the wrong shape is a one-line ValueError
    naming the file and the field, never a TypeError later. full=False: only the fields --compare draws need."""
    file = os.path.join(path, 'condensation.json') if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no condensation.json at '{file}'")
    try:
        with open(file) as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:  # unreadable, not JSON, not UTF-8
        raise ValueError(f"{file}: cannot read it ({one_line(e)})") from None
    runs = obj['runs'] if isinstance(obj, dict) and 'runs' in obj else [obj]
    if not isinstance(runs, list) or not runs:
        raise ValueError(f"{file}: 'runs' is not a list of measured runs")
    for i, run in enumerate(runs):
        where = f"runs[{i}]" if len(runs) > 1 or 'runs' in obj else 'the run'
        problem = run_problem(run, full)
        if problem:
            raise ValueError(f"{file}: {where}{problem}")
    return runs


def run_problem(run, full=True):
    """What is wrong with a run dict of condensation.json ('' if nothing): its field, and what it should be. full:
    the fields the CSV and every figure read must be there (else only those --compare draws; the others are
    checked where present)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    numbers = lambda v, n=None: isinstance(v, list) and len(v) > 0 and all(map(number, v)) and n in (None, len(v))
    if not isinstance(run, dict):
        return f" is a {type(run).__name__}, not a dict"
    n = len(run['mean_cossim']) if numbers(run.get('mean_cossim')) else None
    checks = [('name', lambda v: isinstance(v, str), 'a string'),
              ('step', lambda v: v is None or type(v) is int, 'an integer or null'),
              ('mean_cossim', numbers, 'a list of numbers'),
              ('spearman', lambda v: v is None or number(v), 'a number or null'),
              ('kendall', lambda v: v is None or number(v), 'a number or null'),
              ('histograms', lambda v: v is None or isinstance(v, list) and len(v) == n and all(map(numbers, v)),
               f'null or {n} lists of numbers')]
    more = [(k, lambda v: type(v) is int, 'an integer') for k in ('n_layers', 'num_samples', 'seq_len')]
    more += [('mean_last_n', lambda v: numbers(v, n), f'a list of {n} numbers')]
    for key, ok, what in checks + (more if full else [m for m in more if m[0] in run]):
        if key not in run or not ok(run[key]):
            return f"['{key}'] is {run.get(key, 'missing')!r:.60}, not {what}"
    optional = [(k, lambda v: v is None or type(v) is int, 'an integer or null') for k in ('n_params',)]
    optional += [(k, lambda v: v is None or isinstance(v, (str, int, float)), 'a string, a number or null')
                 for k in ('source', 'modified', 'windows', 'seed', 'dtype')]  # what settings() compares
    optional += [('measures', lambda v: v is None or isinstance(v, list) and all(isinstance(m, str) for m in v),
                  'a list of measure names')]
    for key, ok, what in optional:
        if key in run and not ok(run[key]):
            return f"['{key}'] is {run[key]!r:.60}, not {what}"
    for m in (run.get('measures') or [])[1:]:
        if not numbers(run.get(m), n):
            return f"['{m}'] (a measure it lists) is {run.get(m, 'missing')!r:.60}, not a list of {n} numbers"
    return ''


def merge(earlier, runs):
    """What condensation.json holds after a measurement: every run measured there before, in its place, a run
    measured again with the same settings replaced by its new record, then the runs new to it."""
    now = {settings(r): r for r in runs}
    known = {settings(r) for r in earlier}
    return [now.get(settings(r), r) for r in earlier] + [r for r in runs if settings(r) not in known]


def settings(run):
    """What makes two runs one measurement: the model (its step; for a local one, when its weights last changed),
    the windows, the precision, the histograms, the measures (None: mean_cossim only)."""
    keys = ('source', 'step', 'modified', 'windows', 'num_samples', 'seq_len', 'seed', 'dtype')
    return tuple(run.get(k) for k in keys) + (run.get('histograms') is not None, tuple(run.get('measures') or ()))


def modified(path):
    """The newest modification time of a local model's weights (a .pt file, or the .pt, .safetensors and .bin
    files of a folder); None for a hub id, whose revision names its weights."""
    files = [os.path.join(path, f) for f in os.listdir(path)] if os.path.isdir(path) else [path]
    times = [os.path.getmtime(f) for f in files if f.endswith(('.pt', '.safetensors', '.bin')) and os.path.isfile(f)]
    return max(times, default=None)
