"""
The paper's Table 2 across runs: the training time, per task the mean ± std over seeds, the average rank, the
average over tasks and a t-test against a reference method, as markdown (and CSV). It reads run files only: no
torch, no lm-eval.

    python tables.py out/*/eval.json                                     # the table, as markdown, on stdout
    python tables.py out/*/eval.json --table_out=out/table2.md           # also writes out/table2.md and .csv
    python tables.py out/*/eval.json --reference='L_train + decorrelation'    # the t-tests against another row
    python tables.py out/*/eval.json --ttest=welch                       # Welch's t-test instead of Student's
    python tables.py out/*/eval.json --select=final                      # each run's final model, not its best step

A run file is the --out JSON of eval.py, or the eval.json a train.py run leaves when its eval_tasks key is set.
Runs are grouped into rows by method label: the label eval.py wrote (its --label, else method_label() of the
training config), else method_label() of the training config in train.py's eval.json, else the model's name.
Rows come in the order their labels first appear (after the base model's, below); the columns are the paper's
tasks in its order (COLUMNS), then any other task of every run, by name. A run's training time is its 'compute'
record (train.py writes it into eval.json and the checkpoint, eval.py --out copies it from the checkpoint):
device-hours, summed over resumes.

Which evaluation of a run: train.py's eval.json keeps every lm-eval of the run in 'history' ({'step', 'results'}
each, step 0 first when the model was evaluated before any update) and the final one in 'results'. As the official
runs' Table 2 (KrishnaswamyLab/LM-Dispersion, plot_results.py: best_training_step_per_seed), --select=best shows,
per seed, the evaluation with the best average over the accuracy tasks (the first on ties, step 0 included) and
every column at that step; --select=final the final evaluation. The default is best when every run file has its
history, else final (older eval.json files, eval.py --out files); the line under the table says which, and the
steps chosen. The paper's first row, the base model ('no mid-training'), is the step-0 evaluations of the L_train
runs, one per seed, ranked and t-tested like any other row.

`python eval.py --table a.json b.json ... --table_out=... --reference=... --ttest=...` is the same command: eval.py
hands the run files and those three keys to main() here (--select keeps its default there).
"""

import json
import os
import sys

import numpy as np

from atomic import atomic_write, check_output
from configurator import Choice, config_keys, configure, die, one_line

# -----------------------------------------------------------------------------
# defaults (--key=value; the annotations say what each allows: configurator.py)
table_out = ''   # also write the table as markdown to this file and as CSV beside it (same name, .csv)
reference = ''   # the method the t-tests compare to; '' = the label containing 'dispersion', if any
ttest: Choice(names_in='TTESTS') = 'student'  # 'student' (equal variances, the paper's) | 'welch': the t-test of
                 # the per-seed averages
select: Choice('', 'best', 'final') = ''  # 'best': per seed, the evaluation with the best average (the paper's) |
                 # 'final' | '' = best if every run file has its evaluation history (train.py's 'history'), else final
# -----------------------------------------------------------------------------
CONFIG_KEYS = config_keys(globals())  # configured only when run as a script: eval.py imports this file

# Table 2's columns in the paper's order: task -> header (the ten benchmarks of eval.py, then the perplexity)
COLUMNS = {'anli_r2': 'ANLI R2', 'lambada_openai': 'LAMBADA openai', 'openbookqa': 'OpenbookQA', 'piqa': 'PIQA',
           'truthfulqa_mc2': 'TruthfulQA', 'winogrande': 'WinoGrande', 'arc_easy': 'ARC easy',
           'arc_challenge': 'ARC challenge', 'medmcqa': 'MedMCQA', 'mmlu': 'MMLU',
           'paloma_wikitext_103': 'Wikitext-103 PPL'}
# the metric the paper reports; 'acc' for every other task. Perplexities are lower-is-better.
REPORTED_METRIC = {'paloma_wikitext_103': 'word_perplexity'}
LOWER_IS_BETTER = {'word_perplexity', 'byte_perplexity', 'bits_per_byte', 'perplexity'}
ACC_DIGITS = 1  # accuracies (in %) are shown, and ranked, to one decimal, as in the paper
TTESTS = {'student': True, 'welch': False}  # --ttest -> scipy.stats.ttest_ind's equal_var
BASELINE = 'L_train'  # the row the training times are divided by (the mid-trained baseline), when present
BASE_ROW = 'no mid-training'  # the paper's first row: the base model, from the BASELINE runs' step-0 evaluations

# -----------------------------------------------------------------------------
# one run: its row name and its scores


def reported(task, metrics):
    """(metric name, value, stderr) the tables report for one task's lm-eval metrics, or None."""
    for name in (REPORTED_METRIC.get(task, 'acc'), 'acc', 'word_perplexity'):
        if f'{name},none' in metrics:
            return name, metrics[f'{name},none'], metrics.get(f'{name}_stderr,none')
    return None


def subtasks(group_subtasks):
    """Every task or group that lies below a group (e.g. mmlu's 57 subjects): the tables show the group only."""
    return {child for children in (group_subtasks or {}).values() for child in children}


def method_label(train_config):
    """The method a training config stands for, e.g. 'L_train + dispersion' (the paper's row names)."""
    parts = ['L_train']
    reg = train_config.get('reg') or 'none'
    if reg != 'none':
        # settings that differ from the paper's defaults name the row (Tables 3 and 4)
        extra = [] if train_config.get('reg_loc', 'all') in ('all', None) else [str(train_config['reg_loc'])]
        if train_config.get('reg_coeff', 0.1) != 0.1:
            extra.append(f"λ={train_config['reg_coeff']:g}")
        if train_config.get('reg_tau', 1.0) != 1.0 and reg in ('dispersion', 'l2_repel', 'infonce_cos'):
            extra.append(f"τ={train_config['reg_tau']:g}")
        parts.append(reg + (f" ({', '.join(extra)})" if extra else ''))
    baselines = {'noisy_embedding_alpha': 'noisy embedding', 'active_forgetting_every': 'active forgetting',
                 'teacher': 'distillation'}  # each on when its key is set (non-zero, non-empty)
    parts += [name for key, name in baselines.items() if train_config.get(key)]
    return ' + '.join(parts)


def load_run(path):
    """A --out JSON of eval.py, or the eval.json of a train.py run -> {'label', 'seed', 'scores': {task: (metric,
    value)}, 'compute': {'hours', 'processes', 'device'} or None, 'path', 'history': [(step, scores), ...] or None,
    'step': None}: 'scores' those of the final evaluation ('results'), 'history' train.py's every evaluation, each
    of every task but the subtasks below a group (a group is one column). A run file is data someone handed us:
    every field read is checked, and one of the wrong shape is a one-line error naming the file and the field."""
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        die(f'{path}: cannot read run json ({one_line(e)})')
    if not isinstance(run, dict) or not isinstance(run.get('results'), dict) or not run['results']:
        die(f"{path}: no 'results' (write run files with eval.py --out)")
    try:
        return read_run(run, path)
    except ValueError as e:
        die(f"{path}: {e}")


def is_a(value, *types, none=False):
    """value is one of types (bool is no number), or None when none=True."""
    if value is None:
        return none
    return isinstance(value, types) and not (isinstance(value, bool) and bool not in types)


def read_run(run, path):
    """load_run's reading of a parsed run file; a field of the wrong shape is a ValueError naming it."""
    config = run.get('config')
    if not is_a(config, dict, none=True):
        raise ValueError(f"'config' is a {type(config).__name__}, not a dict")
    config = config or {}
    # eval.py --out keeps the training config under 'train_config'; train.py's eval.json is the training config
    if not is_a(config.get('train_config'), dict, none=True):
        raise ValueError(f"config['train_config'] is a {type(config['train_config']).__name__}, not a dict")
    train_config = config.get('train_config') or (config if 'reg' in config else None)
    for where, value in (('label', run.get('label')), ("config['label']", config.get('label')),
                         ("config['model']", config.get('model'))):
        if not is_a(value, str, none=True):
            raise ValueError(f"{where} is {value!r}, not a string")
    seed = run.get('seed', config.get('seed'))
    if not is_a(seed, int, none=True):
        raise ValueError(f"'seed' is {seed!r}, not an integer")
    try:
        trained_as = method_label(train_config) if train_config else ''
    except (TypeError, ValueError, AttributeError) as e:  # e.g. reg_coeff given as text
        raise ValueError(f"the training config (config{'' if train_config is config else '[train_config]'}) does "
                         f"not read as one: {one_line(e)}") from None
    run_label = (run.get('label') or config.get('label') or trained_as or config.get('model')
                 or os.path.basename(path))
    compute = run.get('compute')  # train.py's record of the training time; a base model has none
    if compute is not None and not (isinstance(compute, dict) and is_a(compute.get('hours'), int, float)):
        raise ValueError("'compute' is not a training time record ({'hours': <float>, 'processes', 'device'})")
    groups = run.get('group_subtasks')
    if not (groups is None or isinstance(groups, dict) and all(isinstance(v, list) for v in groups.values())):
        raise ValueError("'group_subtasks' is not a dict of lists of task names")
    below_groups = subtasks(groups)
    history = run.get('history')  # train.py's every evaluation, in step order; absent in older files and eval.py's
    if history is not None:
        entry_ok = lambda e: (isinstance(e, dict) and is_a(e.get('step'), int) and isinstance(e.get('results'), dict)
                              and e['results'])
        if not isinstance(history, list) or not history or not all(map(entry_ok, history)):
            raise ValueError("'history' is not a list of evaluations ({'step': <int>, 'results': {...}}, ...)")
        history = [(e['step'], task_scores(e['results'], below_groups, f"history[{i}]['results']"))
                   for i, e in enumerate(history)]
    return {'label': run_label, 'seed': seed, 'compute': compute, 'path': path,
            'scores': task_scores(run['results'], below_groups), 'history': history, 'step': None}


def task_scores(results, below_groups, where='results'):
    """lm-eval's results -> {task: (metric, value)}, the tables' metric of every task but the subtasks below a group.
    A task whose entry is not a dict of metrics, or whose reported metric is not a number, is a ValueError naming
    it (where: the field results came from)."""
    scores = {}
    for task, metrics in results.items():
        if task in below_groups:
            continue
        if not isinstance(metrics, dict):
            raise ValueError(f"{where}['{task}'] is a {type(metrics).__name__}, not a dict of metrics")
        r = reported(task, metrics)
        if r is not None:
            if not is_a(r[1], int, float):
                raise ValueError(f"{where}['{task}']['{r[0]},none'] is {r[1]!r}, not a number")
            scores[task] = r[:2]
    return scores

# -----------------------------------------------------------------------------
# which evaluation of a run the table shows


def columns(score_sets):
    """The tasks every score set has, the paper's first in its order (COLUMNS), then by name; and those left out."""
    common = set.intersection(*(set(s) for s in score_sets))
    dropped = sorted(set.union(*(set(s) for s in score_sets)) - common)
    return [t for t in COLUMNS if t in common] + sorted(common - set(COLUMNS)), dropped


def average(scores, tasks):
    """The mean of the accuracies (fractions, as lm-eval writes them) of tasks, over the finite ones; nan if none.
    The official selection's average (plot_results.py, _average_scalar_at_step_single_seed): the same values, in
    the same order, so the same float."""
    values = [scores[t][1] for t in tasks if np.isfinite(scores[t][1])]
    return float(np.mean(values)) if values else float('nan')


def best_evaluation(history, tasks):
    """(step, scores) of the evaluation with the best average over tasks, the first in step order on ties; step 0
    (the model before any update) is a candidate like any other. The rule of the official runs' Table 2
    (KrishnaswamyLab/LM-Dispersion, plot_results.py: best_training_step_per_seed). None if no average is finite.
    Its candidates come in file-name order (lm_eval_begin_0, lm_eval_end_<N>, then lm_eval_interval_<step> sorted
    as strings): the two orders pick differently only on an exact tie that involves the final evaluation or
    interval steps of different digit counts."""
    best, best_avg = None, -np.inf
    for step, scores in sorted(history, key=lambda e: e[0]):  # stable: equal steps keep their order
        avg = average(scores, tasks)
        if np.isfinite(avg) and avg > best_avg:  # '>': a later tie does not replace the first maximum
            best, best_avg = (step, scores), avg
    return best


def select_evaluations(runs, select=''):
    """The runs as the table shows them: each with 'scores' of the evaluation select names ('best': per run, the
    one with the best average over the accuracy tasks every evaluation has; 'final': the final one; '': best when
    every run has a history, else final) and its 'step' where known; first the BASE_ROW row, the step-0
    evaluations of the BASELINE runs that have one (the model before mid-training, one per seed), as the paper's
    Table 2 opens with it. Returns (runs, the rule used)."""
    lacking = next((r['path'] for r in runs if r['history'] is None), None)
    if select == 'best' and lacking:
        die(f'{lacking}: no evaluation history (a train.py run from before it kept one, or an eval.py --out file): '
            'it has only its final evaluation: use --select=final', 2)
    if not select:
        select = 'final' if lacking else 'best'
        if lacking and any(r['history'] is not None for r in runs):
            print(f'warning: {lacking} has no evaluation history: the table shows every run\'s final evaluation '
                  '(--select=final)', file=sys.stderr)
    base = []
    for r in runs:
        step0 = next((scores for step, scores in r['history'] or [] if step == 0), None)
        if r['label'] == BASELINE and step0 is not None:  # no training time: it was not mid-trained
            base.append(dict(r, label=BASE_ROW, compute=None, scores=step0, step=0))
    if select == 'final':
        return base + runs, select
    tasks, _ = columns([scores for r in runs for _, scores in r['history']])
    tasks = [t for t in tasks if runs[0]['history'][0][1][t][0] not in LOWER_IS_BETTER]
    if not tasks:
        die('the runs\' evaluations have no accuracy task in common: nothing to select the best evaluation by')
    chosen = []
    for r in runs:
        best = best_evaluation(r['history'], tasks)
        if best is None:
            die(f"{r['path']}: no evaluation in its history has a finite average over {', '.join(tasks)}")
        chosen.append(dict(r, step=best[0], scores=best[1]))
    return base + chosen, select

# -----------------------------------------------------------------------------
# the statistics across runs


def ttest_p(a, b, equal_var=True):
    """The t-test p-value of two samples of per-seed averages: Student's (equal_var=True, the paper's) or Welch's.
    A method with one run (e.g. the base model, not mid-trained) has no variance estimate: its variance is taken
    as 0, where the test becomes the one-sample t-test of the other sample's mean against that value."""
    from scipy import stats
    if len(a) >= 2 and len(b) >= 2:
        return float(stats.ttest_ind(a, b, equal_var=equal_var).pvalue)
    if len(a) + len(b) >= 3:  # one single run: the other sample's mean against its value
        sample, value = (a, b[0]) if len(b) == 1 else (b, a[0])
        return float(stats.ttest_1samp(sample, value).pvalue)
    return float('nan')


def p_band(p):
    """The t-test column: the smallest of the thresholds p is below, else 'n.s.'."""
    if not np.isfinite(p):
        return 'n/a'
    return next((f'p < {cut:g}' for cut in (0.0001, 0.001, 0.01, 0.05) if p < cut), 'n.s.')


def table_stats(runs, reference='', ttest='student'):
    """Group runs by label (rows in the order the labels first appear) and compute the Table 2 statistics,
    accuracies in percent: the training time (mean device-hours over seeds, and its ratio to the BASELINE row);
    per task, the mean and sample std (ddof=1) over seeds; the average over accuracy tasks (per seed, then mean
    and std); the average rank (per accuracy task, methods ranked by their mean rounded to the ACC_DIGITS the
    table shows, 1 = best, a tie shares the best rank it spans: 1, 2, 2, 4; then the mean over tasks); the t-test
    (Student's or Welch's: ttest) of the per-seed averages against the reference method."""
    from scipy.stats import rankdata
    seen = {}
    for r in runs:  # the same run twice would shrink the std and the p-values without anyone noticing
        key = (r['label'], r['seed'])
        if r['seed'] is not None and key in seen:
            die(f"two runs of '{r['label']}' with seed {r['seed']}: {seen[key]} and {r['path']}")
        seen[key] = r['path']
    methods = list(dict.fromkeys(r['label'] for r in runs))
    by_method = {m: [r for r in runs if r['label'] == m] for m in methods}
    tasks, dropped = columns([r['scores'] for r in runs])
    if dropped:
        print(f"warning: left out tasks not in every run: {', '.join(dropped)}", file=sys.stderr)
    if not tasks:
        die('the runs have no task in common')
    metric = {t: runs[0]['scores'][t][0] for t in tasks}
    percent = {t: metric[t] not in LOWER_IS_BETTER for t in tasks}  # accuracies in [0, 1] -> percent
    acc_tasks = [t for t in tasks if percent[t]]

    values = {m: {t: np.array([r['scores'][t][1] * (100 if percent[t] else 1) for r in by_method[m]])
                  for t in tasks} for m in methods}
    std = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else float('nan')
    table = {'tasks': tasks, 'metric': metric, 'percent': percent, 'methods': methods,
             'n': {m: len(by_method[m]) for m in methods}, 'select': 'final',
             'steps': {m: [(r['seed'], r.get('step')) for r in by_method[m]] for m in methods},
             'mean': {m: {t: float(values[m][t].mean()) for t in tasks} for m in methods},
             'std': {m: {t: std(values[m][t]) for t in tasks} for m in methods}}
    per_seed_avg = {m: np.mean([values[m][t] for t in acc_tasks], axis=0) if acc_tasks else np.array([np.nan])
                    for m in methods}
    table['avg_mean'] = {m: float(per_seed_avg[m].mean()) for m in methods}
    table['avg_std'] = {m: std(per_seed_avg[m]) for m in methods}
    ranks = {m: [] for m in methods}
    for t in acc_tasks:  # the paper's ranks are those of its printed means (checked in tests/test_eval.py)
        shown = [-round(table['mean'][m][t], ACC_DIGITS) for m in methods]
        for m, r in zip(methods, rankdata(shown, method='min')):
            ranks[m].append(float(r))
    table['rank'] = {m: float(np.mean(ranks[m])) if ranks[m] else float('nan') for m in methods}
    if not reference:
        reference = next((m for m in methods if 'dispersion' in m), '')
    elif reference not in methods:
        die(f"reference method '{reference}' is not among the labels: {', '.join(methods)}")
    table['reference'], table['ttest'] = reference, ttest
    equal_var = TTESTS[ttest]
    table['p'] = {m: (ttest_p(per_seed_avg[m], per_seed_avg[reference], equal_var) if reference and m != reference
                      else float('nan')) for m in methods}
    table['band'] = {m: ('ref.' if m == reference else p_band(table['p'][m]) if reference else '') for m in methods}

    table['hours'] = {}
    for m in methods:  # a row's time is the mean over its seeds: only when every seed has its record
        hours = [r['compute']['hours'] for r in by_method[m] if r['compute']]
        if 0 < len(hours) < len(by_method[m]):
            print(f"warning: '{m}': {len(by_method[m]) - len(hours)} of {len(by_method[m])} runs have no training "
                  f"time record: its training time is left out", file=sys.stderr)
        table['hours'][m] = float(np.mean(hours)) if len(hours) == len(by_method[m]) else float('nan')
    baseline = table['hours'].get(BASELINE, float('nan'))
    table['hours_ratio'] = {m: table['hours'][m] / baseline if baseline > 0 else float('nan') for m in methods}
    table['devices'] = sorted({str(r['compute'].get('device', 'unknown device')) for r in runs if r['compute']})
    return table

# -----------------------------------------------------------------------------
# markdown and CSV


def format_markdown(table):
    methods = table['methods']
    # the columns: (header, mean by method, std by method or None, digits shown, lower is better)
    columns = [(COLUMNS.get(t, t) + (' ↑' if table['percent'][t] else ' ↓'),
                {m: table['mean'][m][t] for m in methods}, {m: table['std'][m][t] for m in methods},
                ACC_DIGITS if table['percent'][t] else 2, not table['percent'][t]) for t in table['tasks']]
    columns += [('Rank ↓', table['rank'], None, 1, True),
                ('Average ↑', table['avg_mean'], table['avg_std'], 2, False)]
    rows = {m: [m, str(table['n'][m])] for m in methods}
    timed = any(np.isfinite(h) for h in table['hours'].values())  # the column only when some run has its record
    for m in methods if timed else []:  # as the paper: '1.176 (1.05×)'
        hours, ratio = table['hours'][m], table['hours_ratio'][m]
        text = f'{hours:.3f}' + (f' ({ratio:.2f}×)' if np.isfinite(ratio) else '')
        rows[m].append(text if np.isfinite(hours) else '—')
    for _, mean, std, digits, lower in columns:
        shown = {m: round(mean[m], digits) for m in methods}
        finite = [v for v in shown.values() if np.isfinite(v)]
        best = (min(finite) if lower else max(finite)) if finite else None  # in bold: the best value as shown
        for m in methods:
            text = f'{mean[m]:.{digits}f}' + (f' ± {std[m]:.{digits}f}' if std and np.isfinite(std[m]) else '')
            rows[m].append(f'**{text}**' if shown[m] == best else text)
    head = ['Method', 'Seeds'] + ['Training time'] * timed + [c[0] for c in columns] + ['t-test']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    lines += ['| ' + ' | '.join(rows[m] + [table['band'][m]]) + ' |' for m in methods]
    ref = f"against '{table['reference']}'" if table['reference'] else '(no reference method: pass --reference)'
    test = {'student': "Student's", 'welch': "Welch's"}[table['ttest']]
    lines.append('')
    lines.append('Accuracies in %, mean ± sample standard deviation (ddof=1) over seeds; bold = best. Rank: per '
                 'accuracy task, each method\'s rank by its mean as shown (one decimal; 1 = best, ties share the '
                 'best rank: 1, 2, 2, 4), averaged over tasks. Average: the mean over accuracy tasks for each seed, '
                 f'then mean ± std. t-test: {test} (scipy.stats.ttest_ind, equal_var={TTESTS[table["ttest"]]}) on the per-seed '
                 f'averages {ref}; a single-run method counts as zero variance (one-sample t-test).'
                 + (time_note(table) if timed else ''))
    lines.append('')
    lines.append(selection_note(table))
    return '\n'.join(lines) + '\n'


def selection_note(table):
    """The line under the table that says which evaluation of each run it shows, and at which steps."""
    if table['select'] == 'best':
        note = ('Evaluation shown: per seed, the one with the best average over the accuracy tasks (the first on '
                'ties; step 0 included), every column at that step (--select=best, the paper\'s rule).')
    else:
        note = 'Evaluation shown: each run\'s final one (--select=final).'
    if BASE_ROW in table['methods']:
        note += (f" '{BASE_ROW}': the step-0 evaluations (before any update) of the '{BASELINE}' runs, one per "
                 'seed.')
    steps = [f"{m} {', '.join(f'{step} (seed {seed})' for seed, step in table['steps'][m])}"
             for m in table['methods'] if m != BASE_ROW and all(step is not None for _, step in table['steps'][m])]
    return note + (f" Steps: {'; '.join(steps)}." if steps else '')


def time_note(table):
    """The footnote's sentence on the training-time column."""
    ratio = f", and its ratio to '{BASELINE}'" if np.isfinite(table['hours'].get(BASELINE, float('nan'))) else ''
    return (' Training time: device-hours (training wall time × processes, summed over resumes), mean over seeds'
            f"{ratio}; — = no record; on {', '.join(table['devices'])}.")


def format_csv(table):
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(['method', 'seeds', 'train_hours', 'train_hours_ratio']
               + [f'{t}_{k}' for t in table['tasks'] for k in ('mean', 'std')]
               + ['rank', 'average_mean', 'average_std', 'p_value', 'significance', 'selection', 'steps'])
    for m in table['methods']:
        steps = ' '.join(f'{seed}:{step}' for seed, step in table['steps'][m] if step is not None)  # seed:step
        w.writerow([m, table['n'][m], repr(table['hours'][m]), repr(table['hours_ratio'][m])]
                   + [repr(table[k][m][t]) for t in table['tasks'] for k in ('mean', 'std')]
                   + [repr(table[k][m]) for k in ('rank', 'avg_mean', 'avg_std', 'p')] + [table['band'][m]]
                   + ['step 0' if m == BASE_ROW else table['select'], steps])
    return buf.getvalue()

# -----------------------------------------------------------------------------
# command line


def main(paths, table_out='', reference='', ttest='student', select=''):
    """Print the table of the run files at paths as markdown; with table_out, also write it there and as CSV
    beside it. This file's command line and eval.py --table both end here (configure has checked ttest and select
    against their declarations)."""
    if not paths:
        die('no run json files given: python tables.py run1.json run2.json ...', 2)
    if table_out:  # a table_out that cannot be written is found before the run files are read
        try:
            check_output(table_out, 'table_out')
        except ValueError as e:
            die(str(e), 2)
    runs, select = select_evaluations([load_run(p) for p in paths], select)
    table = table_stats(runs, reference, ttest)
    table['select'] = select
    md = format_markdown(table)
    print(md, end='')
    if table_out:
        try:  # the table is on stdout already; the files are kept elsewhere if they cannot be written here
            os.makedirs(os.path.dirname(os.path.abspath(table_out)), exist_ok=True)
        except OSError:
            pass  # atomic_write fails on it, and keeps the table
        try:
            atomic_write(table_out, md, rescue=True)
            atomic_write(os.path.splitext(table_out)[0] + '.csv', format_csv(table), rescue=True)
        except OSError as e:
            die(str(e))


def split_run_files(argv):
    """The run files are the arguments that are neither an option nor the value of an option written
    `--key value`; configurator.py reads the options. Returns (options, run files)."""
    options, files, i = [], [], 0
    while i < len(argv):
        takes_value = (argv[i].startswith('--') and '=' not in argv[i] and i + 1 < len(argv)
                       and not argv[i + 1].startswith('--'))
        n = 2 if takes_value else 1
        (options if argv[i].startswith('-') else files).extend(argv[i:i + n])
        i += n
    return options, files


if __name__ == '__main__':
    argv, run_files = split_run_files(sys.argv[1:])
    configure(globals(), argv=argv, keys=CONFIG_KEYS)
    main(run_files, table_out, reference, ttest, select)
