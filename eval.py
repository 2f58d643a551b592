"""
Downstream evaluation with lm-eval of one model, or of every run in a folder; --table hands several runs' results
to tables.py (Table 2).

    python eval.py --ckpt=out/                                   # every run in out/: out/<run>/eval.json each
    python eval.py --ckpt=out/midtrain_gpt2 --out=gpt2.json      # one train.py run (or a .pt checkpoint file)
    python eval.py --init_from=gpt2 --out=gpt2.json              # a hub id or a Hugging Face directory
    python eval.py --ckpt=out-demo --tasks=piqa,arc_easy --limit=100 --num_fewshot=0
    python eval.py --ckpt=out-demo --tasks=my_task --include_path=my_tasks/   # custom task YAMLs
    python eval.py --table runs/*/eval.json --table_out=table2.md         # = python tables.py runs/*/eval.json ...

The model is exported with hf_io.to_hf(model) and handed, with the Hugging Face version of its tokenizer, to lm-eval's
own HFLM, so a score here is exactly what lm-eval gives the exported model. The defaults follow the official
mid-training runs: the paper's ten benchmarks, six zero-shot and four few-shot, all four lm-eval seeds equal to the
run's seed, batch size 1 on CPU (on GPU lm-eval's automatic batch size), and the few-shot count and document limit
of the model family (GPT-2: 1-shot, 500 documents per task; Qwen3: 5-shot, 200).

train.py calls evaluate() at the end of a run (its eval_tasks key) and writes eval.json with to_json(). The paper's
Table 2 across runs lives in tables.py (`python tables.py runs/*/eval.json`); --table is the same command: eval.py
hands the run files, --table_out, --reference and --ttest to tables.main(). --out records what it needs: the run's
method label (tables.method_label of the training config, or --label) and, from a checkpoint that has it, the
training time train.py recorded (checkpoint['compute'] -> the record's top-level 'compute').

A folder whose sub-folders are runs (out/ after the paper's configs, out/<name>/, or sweep.py, out/<name>_s<seed>/;
a run holds ckpt.pt, or an FSDP run's ckpt_sharded/) is evaluated run by run, in name order, one progress line each,
the tasks loaded once. Each run's record goes to <run>/eval.json, where tables.py and sweep.py look for it, or with
--out=DIR to DIR/<run>.json. A run whose file is there already is skipped (train.py's eval.json holds the evaluation
history Table 2's best-step rule needs; an interrupted folder evaluation continues where it stopped) unless
--overwrite=True. The record is the --out JSON above, which tables.py reads as it reads train.py's eval.json: label,
seed, config, compute, results.
"""

import gc
import json
import os
import sys

import torch

import tables
from atomic import atomic_write, check_output
from checkpoint import run_dirs
from configurator import Annotated, Choice, Device, Range, config_keys, configure, die, one_line
from hf_io import from_pretrained, to_hf
from model import GPT, Qwen3
from parallel import load_checkpoint, pick_device  # load_checkpoint: ckpt.pt files and sharded folders

# -----------------------------------------------------------------------------
# defaults (override with a config file or --key=value; the annotations say what each allows: configurator.py)
ckpt = ''                         # a train.py out_dir (reads ckpt.pt), a .pt checkpoint file, or a folder of runs
init_from = ''                    # or a hub id (gpt2, Qwen/Qwen3-0.6B) or a Hugging Face directory, with its tokenizer
trust_checkpoint = False          # load --ckpt with full pickle, which can run code: only a file you made yourself
tasks: str | list = ''            # comma-separated lm-eval tasks/groups/tags; '' or 'paper' = the paper's ten
num_fewshot: Annotated[int | None, Range(min=0)] = None  # shots for tasks not ALWAYS_ZERO_SHOT; None = the family's
                                  # (GPT-2 1, Qwen3 5)
limit: Annotated[int | float | None, Range(min=0)] = None  # documents per task (or a fraction < 1); None = the
                                  # family's (500 / 200); 0 = all
include_path = ''                 # a folder of extra task YAMLs (custom or offline tasks)
batch_size: Annotated[int | str, Range(min=1), Choice('auto')] = 'auto'  # 'auto' = lm-eval's largest-that-fits
                                  # search on GPU, 1 on CPU; or an int
device: Device() = 'auto'         # 'auto' = cuda if available, else cpu; or cpu, cuda, cuda:N, mps
dtype: Choice('float32', 'bfloat16', 'float16') = 'float32'  # the weights' dtype during evaluation
seed: Annotated[int | None, Range(min=0)] = None  # all four lm-eval seeds (numpy's takes no negative one); None =
                                  # the run's training seed (as the official runs), or 1
out = ''                          # write lm-eval's results plus the config used to this JSON file; for a folder
                                  # of runs a folder, DIR/<run>.json ('' = <run>/eval.json)
label = ''                        # the method's name in --out, for --table; '' = from the training config or init_from
overwrite = False                 # a folder of runs: evaluate again a run whose results file exists (else skipped)
log_samples = False               # keep lm-eval's per-document records (prompts, log-likelihoods) in --out
# --table only: tables.py's three keys, handed to tables.main()
table_out = ''                    # also write the table as markdown to this file and as CSV beside it (same name, .csv)
reference = ''                    # the method the t-tests compare to; '' = the label containing 'dispersion', if any
ttest: Choice(names_in='tables.TTESTS') = 'student'  # 'student' (equal variances, the paper's) | 'welch': the
                                  # t-test of per-seed averages
# -----------------------------------------------------------------------------
CONFIG_KEYS = config_keys(globals())  # configured in main(): train.py imports this file without its command line

# the paper's benchmarks (Table 2) and the settings of the official runs (KrishnaswamyLab/LM-Dispersion,
# midtrain_gpt2.py and midtrain_qwen3.py: their lm-eval callback)
PAPER_ZERO_SHOT = ['anli_r2', 'lambada_openai', 'openbookqa', 'piqa', 'truthfulqa_mc2', 'winogrande']
PAPER_FEW_SHOT = ['arc_easy', 'arc_challenge', 'medmcqa', 'mmlu']
# everything the official runs evaluated zero-shot (their task lists name the anli/lambada tags, hellaswag and
# the wikitext perplexity too): asked for by name, these stay zero-shot whatever --num_fewshot says
ALWAYS_ZERO_SHOT = set(PAPER_ZERO_SHOT) | {'anli', 'anli_r1', 'anli_r3', 'lambada', 'lambada_standard',
                                           'hellaswag', 'paloma_wikitext_103'}
# per model family (config.json model_type): few-shot count, documents per task, max generated tokens
FAMILY = {'gpt2': dict(num_fewshot=1, limit=500, max_gen_toks=256),
          'qwen3': dict(num_fewshot=5, limit=200, max_gen_toks=1024)}


def to_json(obj):
    # lm-eval's results hold numpy scalars and, in the task configs, functions: numbers stay numbers, the rest str
    return json.dumps(obj, indent=2, default=lambda o: o.item() if hasattr(o, 'item') else str(o))

# -----------------------------------------------------------------------------
# lm-eval on one model


def task_list(names):
    """'' / None / 'paper' -> the paper's ten; 'a,b' or ['a', 'b'] -> ['a', 'b']."""
    if not names or names == 'paper':
        return PAPER_ZERO_SHOT + PAPER_FEW_SHOT
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
    zero_shot = [n for n in loaded if n in ALWAYS_ZERO_SHOT]
    few_shot = [n for n in loaded if n not in ALWAYS_ZERO_SHOT]
    merged = {}
    for shots, names in ((0, zero_shot), (num_fewshot, few_shot)):
        objs = [t for n in names for t in (loaded[n] if isinstance(loaded[n], list) else [loaded[n]])]
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
    from data import check_token_ids, hf_tokenizer

    hf_model = to_hf(model) if isinstance(model, (GPT, Qwen3)) else model  # to_hf is a copy: ours stays as it is
    hf_model = hf_model.to(device=device, dtype=getattr(torch, dtype))
    name = tokenizer if isinstance(tokenizer, str) else getattr(tokenizer, 'name_or_path', '') or \
        type(tokenizer).__name__  # for the messages
    if isinstance(tokenizer, str):
        tokenizer = hf_tokenizer(tokenizer)  # 'byte' is built locally, 'gpt2' / a hub id via AutoTokenizer
    vocab = hf_model.get_input_embeddings().weight.shape[0]
    # every id the tokenizer can produce, its added and special tokens too (their ids need not follow len(tokenizer))
    ids = list(tokenizer.get_vocab().values()) + [tokenizer.convert_tokens_to_ids(t)
                                                  for t in tokenizer.all_special_tokens]
    check_token_ids([i for i in ids if isinstance(i, int)], vocab, name, f"the tokenizer ({len(tokenizer)} tokens)")
    return hf_model, tokenizer


def evaluate(model, tokenizer_name, tasks=None, num_fewshot=None, limit=None, batch_size=1, device='cpu',
             seed=1, include_path=None, dtype='float32', log_samples=False):
    """lm-eval on a model in memory (what train.py calls at the end of a run). model: our GPT/Qwen3 (exported
    with to_hf()) or a transformers model; tokenizer_name: a data.py tokenizer name ('byte', 'gpt2', a hub id)
    or an HF tokenizer; tasks: as --tasks. Returns lm-eval's results dict ('results', 'n-shot', ...; plus
    'settings'). HFLM puts the model in eval mode: ours is put back in the mode it had. Runs in exact float32
    matmuls (TF32 off, as the official runs and this script on its own), whatever the caller allowed: train.py
    turns TF32 on for training."""
    from condensation import exact_float32
    was_training = model.training
    try:
        task_manager, loaded = load_tasks(task_list(tasks), include_path or '')
        hf_model, tok = prepare_hf(model, tokenizer_name, device, dtype)
        with exact_float32():
            return run_lm_eval(hf_model, tok, loaded, task_manager, num_fewshot, limit, batch_size, seed,
                               log_samples)
    finally:
        model.train(was_training)


def print_results(res, names):
    """One line per task asked for, and per task of a tag asked for (a group's subtasks are left out): shots,
    reported metric, value, stderr."""
    below_groups = tables.subtasks(res.get('group_subtasks'))
    rows = [n for n in names if n in res['results']]
    rows += [n for n in res['results'] if n not in rows and n not in below_groups]  # e.g. the tasks of a tag
    number = lambda x, width: f'{x:{width}.4f}' if abs(x) < 1e5 else f'{x:{width}.3e}'  # perplexities can be huge
    print(f"{'task':<24} {'shots':>5}  {'metric':<16} {'value':>10} {'stderr':>8}")
    for task in rows:
        r = tables.reported(task, res['results'][task])  # the metric Table 2 shows
        if r is None:
            continue
        metric, value, stderr = r
        stderr = number(stderr, 8) if isinstance(stderr, (int, float)) else ' ' * 8
        print(f"{task:<24} {res.get('n-shot', {}).get(task, ''):>5}  {metric:<16} {number(value, 10)} {stderr}")

# -----------------------------------------------------------------------------
# command line


def split_table_args(argv):
    """`--table a.json b.json ...` is a flag, not a config key: it and the run files after it (every argument up to
    the next option) are pulled out before configurator.py reads the rest. Returns (remaining argv, run files or
    None)."""
    for i, arg in enumerate(argv):
        if arg == '--table' or arg.startswith('--table='):
            j = i + 1
            while j < len(argv) and not argv[j].startswith('--'):
                j += 1
            files = ([arg.split('=', 1)[1]] if '=' in arg else []) + argv[i + 1:j]
            return argv[:i] + argv[j:], files
    return argv, None


def evaluate_one(path, names, task_manager, loaded, config, dest):
    """lm-eval on one model (a train.py run or checkpoint when config['ckpt'], else a hub id or HF dir), its results
    printed and, with dest, written there as a run file of tables.py: label, seed, config, compute, lm-eval's
    results. Bad input is a one-line error."""
    train_config, compute = None, None
    try:
        if config['ckpt']:
            model, checkpoint = load_checkpoint(path, trust_checkpoint=trust_checkpoint)
            train_config = checkpoint.get('config') or {}
            compute = checkpoint.get('compute')  # train.py's training time: Table 2's compute column
            tokenizer_name = checkpoint.get('data_meta', {}).get('tokenizer')
            if not isinstance(tokenizer_name, str) or not tokenizer_name:
                raise ValueError(f"{path}: the checkpoint has no data_meta['tokenizer']: which tokenizer trained it?")
        else:
            model, tokenizer_name = from_pretrained(path), path
        hf_model, tok = prepare_hf(model, tokenizer_name, device, dtype)
        del model  # ours was copied by to_hf(): free it before lm-eval runs
    except (FileNotFoundError, ValueError) as e:
        die(str(e))
    # the official runs evaluated with all four lm-eval seeds set to the run's seed
    run_seed = seed if seed is not None else int(train_config.get('seed', 1)) if train_config else 1
    res = run_lm_eval(hf_model, tok, loaded, task_manager, num_fewshot, limit, batch_size, run_seed, log_samples)
    del hf_model
    print_results(res, names)
    if dest:
        import lm_eval
        import transformers
        config = dict(config, model=path, tokenizer=tokenizer_name, tasks=names, **res.pop('settings'), device=device,
                      train_config=train_config,
                      package_versions={'lm_eval': lm_eval.__version__, 'transformers': transformers.__version__,
                                        'torch': torch.__version__})
        record = {'label': label or (tables.method_label(train_config) if train_config is not None else path),
                  'seed': train_config.get('seed', run_seed) if train_config else run_seed,  # the run's, for --table
                  'config': config}
        if compute is not None:  # before lm-eval's results, which can be long (samples)
            record['compute'] = compute
        record.update(res)
        try:  # what lm-eval computed is kept elsewhere if dest cannot be written, and the message says where
            os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        except OSError:
            pass  # atomic_write fails on it, and keeps the record
        try:
            atomic_write(dest, to_json(record), rescue=True)
        except OSError as e:
            die(str(e))
        print(f'wrote {dest}')


def main():
    global device, batch_size
    argv, table_files = split_table_args(sys.argv[1:])
    config = configure(globals(), argv=argv, keys=CONFIG_KEYS)
    if table_files is not None:
        if not table_files:
            die('--table needs run json files: python eval.py --table run1.json run2.json ...', 2)
        return tables.main(table_files, table_out, reference, ttest)
    if not ckpt and not init_from:
        die('no model given: pass --ckpt=<train.py out_dir, .pt or a folder of runs> or --init_from=<hub id | HF dir>',
            2)
    if ckpt and init_from:
        die('pass either --ckpt or --init_from, not both', 2)
    if ckpt and not os.path.exists(ckpt):
        die(f'no checkpoint at {ckpt}')
    try:
        runs = run_dirs(ckpt) if ckpt else [init_from]
    except FileNotFoundError as e:  # a folder with neither ckpt.pt nor runs in it
        die(str(e))
    folder = bool(ckpt) and runs != [ckpt]  # a folder of runs: each one is evaluated
    if folder and label:
        die('--label names the method of one run; the runs of a folder are labelled by their training configs', 2)
    if folder and out.endswith('.json'):
        die(f"with a folder of runs, --out names a folder (one <run>.json per run), got {out!r}", 2)
    try:  # where the results go is checked before any evaluation: a wrong kind of path costs nothing
        if out:
            check_output(out, 'out', folder=folder)
        for dest in ([] if out or not folder else [os.path.join(r, 'eval.json') for r in runs]):
            if os.path.isdir(dest):
                raise ValueError(f"{dest} is a folder, where this run's results file would go")
    except ValueError as e:
        die(str(e), 2)
    device = pick_device(device)[0]  # 'auto' = cuda when available, else cpu
    if isinstance(batch_size, str) and not device.startswith('cuda'):
        batch_size = 1  # lm-eval's automatic batch size searches for the largest that does not run out of memory
    names = task_list(tasks)
    try:  # tasks first: a typo or a missing dataset fails before a (possibly large) model is loaded
        task_manager, loaded = load_tasks(names, include_path)
    except (FileNotFoundError, ValueError) as e:
        die(str(e))
    if not folder:
        return evaluate_one(runs[0], names, task_manager, loaded, config, out)
    # each run's file where tables.py looks for it (<run>/eval.json, as train.py's eval_tasks writes), or in --out
    dests = [os.path.join(out, os.path.basename(r) + '.json') if out else os.path.join(r, 'eval.json') for r in runs]
    print(f"{ckpt}: {len(runs)} runs, results to {os.path.join(out, '<run>.json') if out else '<run>/eval.json'}")
    for i, (run, dest) in enumerate(zip(runs, dests)):
        if os.path.isfile(dest) and not overwrite:
            print(f"[{i + 1}/{len(runs)}] {run}: kept, {dest} exists (--overwrite=True evaluates it again)")
            continue
        print(f"[{i + 1}/{len(runs)}] {run}: {', '.join(names)}", flush=True)
        evaluate_one(run, names, task_manager, loaded, config, dest)
        gc.collect()  # the model of this run before the next one's
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == '__main__':
    main()
