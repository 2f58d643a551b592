"""
Downstream evaluation with lm-eval, and the paper's Table 2 across runs.

    python eval.py --ckpt=out/ --out=out/eval.json               # a train.py checkpoint
    python eval.py --init_from=gpt2 --out=gpt2.json              # a hub id or a Hugging Face directory
    python eval.py --ckpt=out/ --tasks=piqa,arc_easy --limit=100 --num_fewshot=0
    python eval.py --ckpt=out/ --tasks=my_task --include_path=my_tasks/   # custom task YAMLs
    python eval.py --table runs/*/eval.json --table_out=table2.md         # also writes table2.csv

The model is exported with model.to_hf() and handed, with the Hugging Face version of its tokenizer, to lm-eval's
own HFLM, so a score here is exactly what lm-eval gives the exported model. The defaults follow the official
mid-training runs: the paper's ten benchmarks, six zero-shot and four few-shot, all four lm-eval seeds equal to the
run's seed, batch size 1 on CPU (on GPU lm-eval's automatic batch size), and the few-shot count and document limit
of the model family (GPT-2: 1-shot, 500 documents per task; Qwen3: 5-shot, 200).

train.py calls evaluate() at the end of a run (its eval_tasks key). --table reads the --out files of several runs,
groups them by method label, and prints the paper's Table 2 layout as markdown (and CSV with --table_out).
"""

import json
import os
import sys

import numpy as np

from configurator import configure, die

# -----------------------------------------------------------------------------
# the paper's benchmarks (Table 2) and the official runs' settings (LM-Dispersion midtrain_{gpt2,qwen3}.py)
# (a dict, not two lists: configurator.py would take module-level lists for config keys)
PAPER_TASKS = {'zero_shot': ['anli_r2', 'lambada_openai', 'openbookqa', 'piqa', 'truthfulqa_mc2', 'winogrande'],
               'few_shot': ['arc_easy', 'arc_challenge', 'medmcqa', 'mmlu']}
# everything the official runs evaluated zero-shot (their task lists name the anli/lambada tags, hellaswag and
# the wikitext perplexity too): asked for by name, these stay zero-shot whatever --num_fewshot says
ZERO_SHOT = set(PAPER_TASKS['zero_shot']) | {'anli', 'anli_r1', 'anli_r3', 'lambada', 'lambada_standard',
                                             'hellaswag', 'paloma_wikitext_103'}
# per model family (config.json model_type): few-shot count, documents per task, max generated tokens
FAMILY = {'gpt2': dict(num_fewshot=1, limit=500, max_gen_toks=256),
          'qwen3': dict(num_fewshot=5, limit=200, max_gen_toks=1024)}
# the metric the paper reports; 'acc' for every other task. Perplexities are lower-is-better.
REPORTED_METRIC = {'paloma_wikitext_103': 'word_perplexity'}
LOWER_IS_BETTER = {'word_perplexity', 'byte_perplexity', 'bits_per_byte', 'perplexity'}
DISPLAY_NAME = {'anli_r2': 'ANLI R2', 'lambada_openai': 'LAMBADA openai', 'openbookqa': 'OpenbookQA',
                'piqa': 'PIQA', 'truthfulqa_mc2': 'TruthfulQA', 'winogrande': 'WinoGrande', 'arc_easy': 'ARC easy',
                'arc_challenge': 'ARC challenge', 'medmcqa': 'MedMCQA', 'mmlu': 'MMLU',
                'paloma_wikitext_103': 'Wikitext-103 PPL'}

# -----------------------------------------------------------------------------
ckpt = ''              # a train.py out_dir (reads ckpt.pt) or a .pt checkpoint file
init_from = ''         # or a hub id (gpt2, Qwen/Qwen3-0.6B) or a Hugging Face directory, with its own tokenizer
tasks = ''             # comma-separated lm-eval tasks/groups/tags; '' = the paper's ten
num_fewshot = None     # shots for tasks outside the zero-shot list; None = the model family's (GPT-2 1, Qwen3 5)
limit = None           # documents per task (int, or a fraction < 1); None = the family's (500 / 200); 0 = all
include_path = ''      # a folder of extra task YAMLs (custom or offline tasks)
batch_size = 'auto'    # 'auto' = lm-eval's largest-that-fits search on GPU, 1 on CPU; or an int
device = ''            # '' = cuda if available, else cpu
dtype = 'float32'      # float32 | bfloat16 | float16: the weights' dtype during evaluation
seed = None            # all four lm-eval seeds; None = the checkpoint's training seed (as the official runs), else 1
out = ''               # write lm-eval's results plus the config used to this JSON file
label = ''             # method label stored in --out for --table; '' = from the training config (or init_from)
log_samples = False    # keep lm-eval's per-document records (prompts, log-likelihoods) in --out
# --table only
table_out = ''         # also write the table as markdown to this file and as CSV next to it (same name, .csv)
reference = ''         # the method the t-tests compare against; '' = the label containing 'dispersion', if any
# -----------------------------------------------------------------------------


def write_atomic(path, text):
    """Write text to path through a temporary file and os.replace: never a half-written file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def to_json(obj):
    # lm-eval's results hold numpy scalars and, in the task configs, functions: numbers stay numbers, the rest str
    return json.dumps(obj, indent=2, default=lambda o: o.item() if hasattr(o, 'item') else str(o))


def one_line(e):
    return ' '.join(f'{type(e).__name__}: {e}'.split())


# -----------------------------------------------------------------------------
# lm-eval tasks


def task_list(names):
    """'' / None -> the paper's ten; 'a,b' or ['a', 'b'] -> ['a', 'b']."""
    if not names:
        return PAPER_TASKS['zero_shot'] + PAPER_TASKS['few_shot']
    if isinstance(names, str):
        names = names.split(',')
    return [n.strip() for n in names if n.strip()]


def load_tasks(names, include_path='', include_defaults=None):
    """Resolve task names and load their datasets, before any model is loaded, so that a typo or a dataset that
    is not downloaded fails in seconds. Returns (task_manager, {name: Task | Group | [Task]}); raises ValueError
    with a one-line message naming the task. include_defaults=None indexes lm-eval's built-in tasks only when
    include_path lacks one of the names (indexing its ~15k YAMLs takes ~10 s)."""
    from lm_eval.tasks import TaskManager
    import datasets
    import huggingface_hub.errors

    def known(tm, name):
        return name in tm.task_index or (name.endswith(('.yaml', '.yml')) and os.path.isfile(name))

    custom_only = False
    if include_path and not include_defaults:
        tm = TaskManager(include_path=include_path, include_defaults=False)
        custom_only = include_defaults is False or all(known(tm, n) for n in names)
    if not custom_only:
        tm = TaskManager(include_path=include_path or None)
    unknown = [n for n in names if not known(tm, n)]
    if unknown:
        where = f'lm-eval or {include_path}' if include_path else 'lm-eval (custom YAMLs: --include_path)'
        raise ValueError(f"unknown task{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                         f"not a task, group or tag of {where}")
    loaded = {}
    for name in names:
        try:  # building a task loads its dataset (datasets.load_dataset): from the hub, or its cache offline
            d = tm.load([name])
        except KeyError as e:  # a custom group naming built-in tasks: they need the full index
            if custom_only and include_defaults is None:
                return load_tasks(names, include_path, include_defaults=True)
            raise ValueError(f'task {name}: {one_line(e)}') from e
        except (ConnectionError, OSError, datasets.exceptions.DatasetNotFoundError,
                huggingface_hub.errors.HfHubHTTPError) as e:
            offline = any(os.environ.get(k, '0') not in ('', '0') for k in ('HF_DATASETS_OFFLINE', 'HF_HUB_OFFLINE'))
            raise ValueError(f"task {name}: its dataset cannot be loaded ({one_line(e)}); a hub dataset must be "
                             f"downloaded once with network access"
                             + (' (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set)' if offline else '')) from e
        # the top-level object: the group itself (so lm-eval aggregates it, e.g. mmlu), the task, or a tag's tasks
        loaded[name] = d['groups'].get(name) or d['tasks'].get(name) or list(d['tasks'].values())
    return tm, loaded


def run_lm_eval(hf_model, hf_tokenizer, loaded, task_manager, num_fewshot=None, limit=None, batch_size=1,
                seed=1, log_samples=False):
    """simple_evaluate on an HFLM around a transformers model instance (already on its device and dtype), once
    zero-shot and once few-shot, as the official runs did. Returns lm-eval's results dict, both calls merged,
    plus 'settings': the few-shot count, limit and seed used."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    model_type = hf_model.config.model_type
    if model_type not in FAMILY and (num_fewshot is None or limit is None):
        raise ValueError(f"no default few-shot count and limit for model type '{model_type}': pass both")
    family = FAMILY.get(model_type, FAMILY['gpt2'])
    num_fewshot = family['num_fewshot'] if num_fewshot is None else num_fewshot
    limit = family['limit'] if limit is None else (None if limit == 0 else limit)  # 0 = every document
    gen_kwargs = {'max_gen_toks': family['max_gen_toks'], 'do_sample': False}  # only generation tasks use it

    lm = HFLM(pretrained=hf_model, tokenizer=hf_tokenizer, batch_size=batch_size)
    zero_shot = [n for n in loaded if n in ZERO_SHOT]
    few_shot = [n for n in loaded if n not in ZERO_SHOT]
    merged = {}
    for shots, group in ((0, zero_shot), (num_fewshot, few_shot)):
        objs = [t for n in group for t in (loaded[n] if isinstance(loaded[n], list) else [loaded[n]])]
        if not objs:
            continue
        res = simple_evaluate(model=lm, tasks=objs, task_manager=task_manager, num_fewshot=shots, limit=limit,
                              gen_kwargs=gen_kwargs, log_samples=log_samples, random_seed=seed,
                              numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)
        if res is None:  # lm-eval answers only where LOCAL_RANK is 0
            raise RuntimeError('lm-eval returned no results: evaluate on the master process (LOCAL_RANK=0) only')
        for key in ('results', 'groups', 'group_subtasks', 'n-shot', 'n-samples', 'higher_is_better',
                    'versions', 'configs', 'samples'):
            if key in res:
                merged.setdefault(key, {}).update(res[key])
    merged['settings'] = dict(num_fewshot=num_fewshot, limit=limit, seed=seed, gen_kwargs=gen_kwargs,
                              batch_size=batch_size, zero_shot=zero_shot, few_shot=few_shot)
    return merged


def prepare_hf(model, tokenizer, device='cpu', dtype='float32'):
    """(our model or a transformers model, tokenizer name or instance) -> (transformers model on device, HF
    tokenizer). Ours is exported (a copy); a transformers model is moved in place. Refuses a tokenizer whose ids
    do not fit the model's vocabulary."""
    import torch

    hf_model = model.to_hf() if hasattr(model, 'to_hf') else model  # to_hf() is a copy: ours stays as it is
    hf_model = hf_model.to(device=device, dtype=getattr(torch, dtype))
    if isinstance(tokenizer, str):
        from data import hf_tokenizer
        tokenizer = hf_tokenizer(tokenizer)  # 'byte' is built locally, 'gpt2' / a hub id via AutoTokenizer
    vocab = hf_model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is {vocab}: "
                         f"not the tokenizer it was trained with")
    return hf_model, tokenizer


def evaluate(model, tokenizer_name, tasks=None, num_fewshot=None, limit=None, batch_size=1, device='cpu',
             seed=1, include_path=None, dtype='float32', log_samples=False):
    """lm-eval on a model in memory (what train.py calls at the end of a run). model: our GPT/Qwen3 (exported
    with to_hf()) or a transformers model; tokenizer_name: a data.py tokenizer name ('byte', 'gpt2', a hub id)
    or an HF tokenizer. Returns lm-eval's results dict ('results', 'n-shot', ...; plus 'settings'). HFLM puts the
    model in eval mode: ours is put back in the mode it had."""
    was_training = model.training
    try:
        task_manager, loaded = load_tasks(task_list(tasks), include_path or '')
        hf_model, tok = prepare_hf(model, tokenizer_name, device, dtype)
        return run_lm_eval(hf_model, tok, loaded, task_manager, num_fewshot, limit, batch_size, seed, log_samples)
    finally:
        model.train(was_training)


def reported(task, metrics):
    """(metric name, value, stderr) the tables report for one task's lm-eval metrics, or None."""
    for name in (REPORTED_METRIC.get(task, 'acc'), 'acc', 'word_perplexity'):
        if f'{name},none' in metrics:
            return name, metrics[f'{name},none'], metrics.get(f'{name}_stderr,none')
    return None


def subtasks(group_subtasks):
    """Every task or group that lies below a group (e.g. mmlu's 57 subjects): the tables show the group only."""
    return {child for children in (group_subtasks or {}).values() for child in children}


def print_results(res, names):
    """One line per task asked for (a group's subtasks are left out): shots, reported metric, value, stderr."""
    hidden = subtasks(res.get('group_subtasks'))
    rows = [n for n in names if n in res['results']]
    rows += [n for n in res['results'] if n not in rows and n not in hidden]  # e.g. the tasks of a tag
    number = lambda x, width: f'{x:{width}.4f}' if abs(x) < 1e5 else f'{x:{width}.3e}'  # perplexities can be huge
    print(f"{'task':<24} {'shots':>5}  {'metric':<16} {'value':>10} {'stderr':>8}")
    for task in rows:
        r = reported(task, res['results'][task])
        if r is None:
            continue
        metric, value, stderr = r
        stderr = number(stderr, 8) if isinstance(stderr, (int, float)) else ' ' * 8
        print(f"{task:<24} {res.get('n-shot', {}).get(task, ''):>5}  {metric:<16} {number(value, 10)} {stderr}")


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
    if train_config.get('noisy_embedding_alpha'):
        parts.append('noisy embedding')
    if train_config.get('active_forgetting_every'):
        parts.append('active forgetting')
    if train_config.get('teacher'):
        parts.append('distillation')
    return ' + '.join(parts)


# -----------------------------------------------------------------------------
# the paper's Table 2 across runs


def load_run(path):
    """A --out JSON -> {'label', 'seed', 'scores': {task: (metric, value)}} (task-level results only)."""
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        die(f'{path}: cannot read run json ({one_line(e)})')
    if not isinstance(run, dict) or not isinstance(run.get('results'), dict) or not run['results']:
        die(f"{path}: no 'results' (write run files with eval.py --out)")
    config = run.get('config') or {}
    train_config = config.get('train_config') or (config if 'reg' in config else None)
    run_label = (run.get('label') or config.get('label') or (method_label(train_config) if train_config else '')
                 or config.get('model') or os.path.basename(path))
    hidden = subtasks(run.get('group_subtasks'))
    scores = {}
    for task, metrics in run['results'].items():
        r = reported(task, metrics) if task not in hidden else None
        if r is not None:
            scores[task] = r[:2]
    return {'label': run_label, 'seed': run.get('seed', config.get('seed')), 'scores': scores, 'path': path}


def welch_p(a, b):
    """Welch's t-test p-value of two samples of per-seed averages. A method with one run (e.g. the base model,
    not mid-trained) has no variance estimate: its variance is taken as 0, where Welch's test becomes the
    one-sample t-test of the other sample's mean against that value."""
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) >= 2 and len(b) >= 2:
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    if len(a) >= 2 and len(b) == 1:
        return float(stats.ttest_1samp(a, b[0]).pvalue)
    if len(a) == 1 and len(b) >= 2:
        return float(stats.ttest_1samp(b, a[0]).pvalue)
    return float('nan')


def p_band(p):
    if not np.isfinite(p):
        return 'n/a'
    for cut in (0.0001, 0.001, 0.01, 0.05):
        if p < cut:
            return f'p < {cut:g}'
    return 'n.s.'


def summarize(runs, reference=''):
    """Group runs by label (rows in the order the labels first appear) and compute the Table 2 statistics,
    accuracies in percent: per task, the mean and sample std (ddof=1) over seeds; the average over accuracy tasks
    (per seed, then mean and std); the average rank (per accuracy task, methods ranked by mean, 1 = best, ties
    averaged; then the mean over tasks); Welch's t-test of the per-seed averages against the reference method."""
    from scipy.stats import rankdata
    seen = {}
    for r in runs:  # the same run twice would shrink the std and the p-values without anyone noticing
        key = (r['label'], r['seed'])
        if r['seed'] is not None and key in seen:
            die(f"two runs of '{r['label']}' with seed {r['seed']}: {seen[key]} and {r['path']}")
        seen[key] = r['path']
    methods = list(dict.fromkeys(r['label'] for r in runs))
    by_method = {m: [r for r in runs if r['label'] == m] for m in methods}
    common = set.intersection(*(set(r['scores']) for r in runs))
    dropped = sorted(set.union(*(set(r['scores']) for r in runs)) - common)
    if dropped:
        print(f"warning: left out tasks not in every run: {', '.join(dropped)}", file=sys.stderr)
    if not common:
        die('the runs have no task in common')
    paper = PAPER_TASKS['zero_shot'] + PAPER_TASKS['few_shot'] + ['paloma_wikitext_103']
    tasks = [t for t in paper if t in common] + sorted(common - set(paper))
    metric = {t: runs[0]['scores'][t][0] for t in tasks}
    percent = {t: metric[t] not in LOWER_IS_BETTER for t in tasks}  # accuracies in [0, 1] -> percent
    acc_tasks = [t for t in tasks if percent[t]]

    values = {m: {t: np.array([r['scores'][t][1] * (100 if percent[t] else 1) for r in by_method[m]])
                  for t in tasks} for m in methods}
    std = lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else float('nan')
    s = {'tasks': tasks, 'metric': metric, 'percent': percent, 'methods': methods,
         'n': {m: len(by_method[m]) for m in methods},
         'mean': {m: {t: float(values[m][t].mean()) for t in tasks} for m in methods},
         'std': {m: {t: std(values[m][t]) for t in tasks} for m in methods}}
    per_seed_avg = {m: np.mean([values[m][t] for t in acc_tasks], axis=0) if acc_tasks else np.array([np.nan])
                    for m in methods}
    s['avg_mean'] = {m: float(per_seed_avg[m].mean()) for m in methods}
    s['avg_std'] = {m: std(per_seed_avg[m]) for m in methods}
    ranks = {m: [] for m in methods}
    for t in acc_tasks:
        for m, r in zip(methods, rankdata([-s['mean'][m][t] for m in methods], method='average')):
            ranks[m].append(float(r))
    s['rank'] = {m: float(np.mean(ranks[m])) if ranks[m] else float('nan') for m in methods}
    if not reference:
        reference = next((m for m in methods if 'dispersion' in m), '')
    elif reference not in methods:
        die(f"reference method '{reference}' is not among the labels: {', '.join(methods)}")
    s['reference'] = reference
    s['p'] = {m: (welch_p(per_seed_avg[m], per_seed_avg[reference]) if reference and m != reference
                  else float('nan')) for m in methods}
    s['band'] = {m: ('ref.' if m == reference else p_band(s['p'][m]) if reference else '') for m in methods}
    return s


def format_markdown(s):
    tasks, methods = s['tasks'], s['methods']

    def cell(mean, sd, digits):
        return f'{mean:.{digits}f}' + (f' ± {sd:.{digits}f}' if np.isfinite(sd) else '')

    def best(values, lower=False):  # the best value of a column, as shown (bold), over methods
        finite = [v for v in values if np.isfinite(v)]
        return (min(finite) if lower else max(finite)) if finite else None

    head = ['Method', 'Seeds'] + [DISPLAY_NAME.get(t, t) + (' ↓' if not s['percent'][t] else ' ↑') for t in tasks]
    head += ['Rank ↓', 'Average ↑', 't-test']
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    top = {t: best([round(s['mean'][m][t], 1 if s['percent'][t] else 2) for m in methods],
                   lower=not s['percent'][t]) for t in tasks}
    top_rank = best([round(s['rank'][m], 1) for m in methods], lower=True)
    top_avg = best([round(s['avg_mean'][m], 2) for m in methods])
    for m in methods:
        row = [m, str(s['n'][m])]
        for t in tasks:
            digits = 1 if s['percent'][t] else 2
            c = cell(s['mean'][m][t], s['std'][m][t], digits)
            row.append(f'**{c}**' if round(s['mean'][m][t], digits) == top[t] else c)
        rank = f"{s['rank'][m]:.1f}"
        avg = cell(s['avg_mean'][m], s['avg_std'][m], 2)
        row.append(f'**{rank}**' if round(s['rank'][m], 1) == top_rank else rank)
        row.append(f'**{avg}**' if round(s['avg_mean'][m], 2) == top_avg else avg)
        row.append(s['band'][m])
        lines.append('| ' + ' | '.join(row) + ' |')
    ref = f"against '{s['reference']}'" if s['reference'] else '(no reference method: pass --reference)'
    lines.append('')
    lines.append('Accuracies in %, mean ± sample standard deviation (ddof=1) over seeds; bold = best. Rank: the '
                 'mean over accuracy tasks of each method\'s rank by mean (1 = best, ties averaged). Average: the '
                 'mean over accuracy tasks for each seed, then mean ± std. t-test: Welch\'s (scipy.stats.ttest_ind, '
                 f'equal_var=False) on the per-seed averages {ref}; a single-run method counts as zero variance '
                 '(one-sample t-test).')
    return '\n'.join(lines) + '\n'


def format_csv(s):
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(['method', 'seeds'] + [f'{t}_{k}' for t in s['tasks'] for k in ('mean', 'std')]
               + ['rank', 'average_mean', 'average_std', 'p_value', 'significance'])
    for m in s['methods']:
        w.writerow([m, s['n'][m]] + [repr(s[k][m][t]) for t in s['tasks'] for k in ('mean', 'std')]
                   + [repr(s['rank'][m]), repr(s['avg_mean'][m]), repr(s['avg_std'][m]), repr(s['p'][m]),
                      s['band'][m]])
    return buf.getvalue()


def table_main(paths):
    if not paths:
        die('--table needs run json files: python eval.py --table run1.json run2.json ...', 2)
    s = summarize([load_run(p) for p in paths], reference)
    md = format_markdown(s)
    print(md, end='')
    if table_out:
        write_atomic(table_out, md)
        write_atomic(os.path.splitext(table_out)[0] + '.csv', format_csv(s))


# -----------------------------------------------------------------------------
# command line


def split_table_args(argv):
    """`--table a.json b.json ...` takes every following argument that is not an option (configurator.py knows
    only --key=value), so pull them out first. Returns (remaining argv, run files or None)."""
    for i, arg in enumerate(argv):
        if arg == '--table' or arg.startswith('--table='):
            j = i + 1
            while j < len(argv) and not argv[j].startswith('--'):
                j += 1
            files = ([arg.split('=', 1)[1]] if '=' in arg else []) + argv[i + 1:j]
            return argv[:i] + argv[j:], files
    return argv, None


def main():
    global seed, device, batch_size
    argv, table_files = split_table_args(sys.argv[1:])
    config = configure(globals(), argv=argv, types={'num_fewshot': (int, type(None)), 'seed': (int, type(None)),
                                                   'limit': (int, float, type(None)), 'batch_size': (int, str),
                                                   'tasks': (str, list)})
    if table_files is not None:
        return table_main(table_files)
    if not ckpt and not init_from:
        die('no model given: pass --ckpt=<train.py out_dir or .pt> or --init_from=<hub id | HF dir>', 2)
    if ckpt and init_from:
        die('pass either --ckpt or --init_from, not both', 2)
    if ckpt and not os.path.exists(ckpt):
        die(f'no checkpoint at {ckpt}')
    if isinstance(batch_size, str) and not batch_size.startswith('auto'):
        die(f"--batch_size expects an int or 'auto', got {batch_size!r}", 2)
    if dtype not in ('float32', 'bfloat16', 'float16'):
        die(f"--dtype expects float32, bfloat16 or float16, got {dtype!r}", 2)
    names = task_list(tasks)
    try:  # tasks first: a typo or a missing dataset fails before a (possibly large) model is loaded
        task_manager, loaded = load_tasks(names, include_path)
    except ValueError as e:
        die(str(e))

    import lm_eval
    import torch
    import transformers
    from model import from_pretrained, load_checkpoint
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if isinstance(batch_size, str) and not device.startswith('cuda'):
        batch_size = 1  # lm-eval's automatic batch size searches for the largest that does not run out of memory
    train_config = None
    try:
        if ckpt:
            model, checkpoint = load_checkpoint(ckpt)
            train_config = checkpoint.get('config') or {}
            tokenizer_name = (checkpoint.get('data_meta') or {}).get('tokenizer')
            if not tokenizer_name:
                raise ValueError(f"{ckpt}: the checkpoint has no data_meta['tokenizer']: which tokenizer trained it?")
        else:
            model, tokenizer_name = from_pretrained(init_from), init_from
        hf_model, tok = prepare_hf(model, tokenizer_name, device, dtype)
        del model
    except (FileNotFoundError, ValueError) as e:
        die(str(e))
    if seed is None:  # the official runs evaluated with all four lm-eval seeds set to the run's seed
        seed = int(train_config.get('seed', 1)) if train_config else 1
    res = run_lm_eval(hf_model, tok, loaded, task_manager, num_fewshot, limit, batch_size, seed, log_samples)
    print_results(res, names)

    if out:
        config.update(model=ckpt or init_from, tokenizer=tokenizer_name, tasks=names, **res.pop('settings'),
                      device=device, train_config=train_config,
                      package_versions={'lm_eval': lm_eval.__version__, 'transformers': transformers.__version__,
                                        'torch': torch.__version__})
        record = {'label': label or (method_label(train_config) if train_config is not None else init_from),
                  'seed': train_config.get('seed', seed) if train_config else seed,  # the run's seed, for --table
                  'config': config, **res}
        write_atomic(out, to_json(record))
        print(f'wrote {out}')


if __name__ == '__main__':
    main()
