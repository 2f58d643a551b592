"""
Run one of the paper's tables: every config of the table over several seeds, then tables.py over their results.

    python sweep.py --table=2 --family=gpt2 --seeds=1,2,3 --nproc=8     # Table 2, GPT2 rows
    python sweep.py --table=4 --dry_run=True                            # print the commands only

Each run is `torchrun --standalone --nproc_per_node=<nproc> train.py config/<name>.py --seed=S
--out_dir=out/<name>_s<S>`; the configs run lm-eval at the end (eval_tasks='paper') and leave eval.json. Then
`python tables.py out/<name>_s<S>/eval.json ... --table_out=out/table<N>.md` (table2_<family>.md for Table 2)
groups them by method into the paper's layout (mean +- std over seeds, average rank, and Student's t-test (the paper's) of the
per-seed averages against the dispersion row; a row of a single run is compared by a one-sample t-test), printed
and written with a .csv beside it.

An interrupted sweep continues where it stopped: run it again with the same arguments. A run whose eval.json exists
is done and skipped (its files are left as they are); a run whose out_dir holds a checkpoint (ckpt.pt, or an FSDP
run's ckpt_sharded/) but no eval.json was interrupted and continues with --init_from=resume; any other starts.

    python sweep.py --table=3 --seeds=1 --out_root=out-small --train_args="--max_tokens=20_000_000 --batch_size=8"

--train_args go to every run after the config file (shell quoting, as on a command line): smaller budgets, local
paths (--init_from=<HF dir>, --dataset=...), more lm-eval settings.
"""

import os
import shlex
import subprocess
import sys

from configurator import Annotated, Choice, Range, configure, die

METHODS = ['', '_noisy', '_forget', '_decor', '_l2', '_ortho', '_disp']  # Table 2's rows, in the paper's order
TABLES = {  # the paper's tables -> their configs (family: the key below, read when the table is built)
    2: lambda: [f'midtrain_{family}{m}' for m in METHODS],
    3: lambda: ['midtrain_gpt2_disp_early', 'midtrain_gpt2_disp_late'],
    4: lambda: ['midtrain_gpt2_disp'] + [f'midtrain_gpt2_disp_{v}' for v in
                                         ('lambda0p01', 'lambda0p5', 'lambda1p0', 'tau0p1', 'tau0p5', 'tau2p0')],
    5: lambda: ['pretrain_qwen3_0_6b', 'pretrain_qwen3_0_6b_disp'],
}

# -----------------------------------------------------------------------------
# defaults (--key=value; the annotations say what each allows: configurator.py)
table: Choice(names_in='TABLES') = 2  # 2 | 3 | 4 | 5
family: Choice('gpt2', 'gpt2m', 'qwen3_0_6b', 'qwen3_1_7b') = 'gpt2'  # Table 2 only: its model family
seeds: Annotated[int | list, Range(min=0)] = [1, 2, 3]  # --seeds=1,2,3 or --seeds=1; the paper reports mean +- std
                               # over seeds
nproc: Range(min=1) = 8        # GPUs per run (torchrun); 1 runs plain python
dry_run = False                # print the commands, run nothing
out_root = 'out'               # the runs go to <out_root>/<name>_s<seed>, the table to <out_root>/table<N>.md
train_args = ''                # more train.py overrides for every run, e.g. "--max_tokens=20_000_000 --batch_size=8"
# -----------------------------------------------------------------------------
configure(globals())

names = TABLES[table]()
root = os.path.dirname(os.path.abspath(__file__))
missing = [n for n in names if not os.path.isfile(os.path.join(root, 'config', f'{n}.py'))]
if missing:
    die(f"no config file for {', '.join(missing)} (family '{family}'?)", 2)
seed_list = [seeds] if isinstance(seeds, int) else seeds  # --seeds=1,2,3 is read as the tuple (1, 2, 3)
if not seed_list or not all(type(s) is int for s in seed_list):
    die(f"--seeds expects integers, e.g. --seeds=1,2,3 or --seeds=1; got {seeds!r}", 2)
launcher = ['torchrun', '--standalone', f'--nproc_per_node={nproc}'] if nproc > 1 else [sys.executable]
try:
    extra = shlex.split(train_args)
except ValueError as e:  # an unclosed quote
    die(f"--train_args: {e}", 2)


def resumable(out_dir):
    """Whether out_dir holds a checkpoint that train.py --init_from=resume continues: ckpt.pt or an FSDP run's
    ckpt_sharded/ (checkpoint.latest_checkpoint, which train.py resumes from), or the folder a sharded save had
    just renamed when it was killed (train.py puts it back)."""
    if not os.path.isdir(out_dir):
        return False
    from checkpoint import SHARDED, latest_checkpoint  # torch: imported only when there is a folder to look into
    try:
        found = os.path.exists(latest_checkpoint(out_dir))
    except ValueError:  # a damaged checkpoint: resuming says so, on one line, and starting anew would be refused
        found = True
    return found or os.path.isdir(os.path.join(out_dir, SHARDED + '.old'))


results = []
for name in names:
    for seed in seed_list:
        out_dir = os.path.join(out_root, f'{name}_s{seed}')
        results.append(os.path.join(out_dir, 'eval.json'))
        where = os.path.join(root, out_dir)  # train.py runs in root: a relative out_root is relative to it
        if os.path.isfile(os.path.join(where, 'eval.json')):
            print(f"done: {out_dir} (eval.json exists)", flush=True)
            continue
        cmd = [*launcher, 'train.py', f'config/{name}.py', f'--seed={seed}', f'--out_dir={out_dir}', *extra]
        if resumable(where):  # last, so that it wins over an init_from in train_args
            cmd.append('--init_from=resume')
        print(shlex.join(cmd), flush=True)
        if dry_run:
            continue
        if subprocess.run(cmd, cwd=root).returncode != 0:
            die(f"run {out_dir} failed; fix it and run the sweep again (finished runs are skipped, interrupted ones "
                f"resume)")
        if not os.path.isfile(os.path.join(where, 'eval.json')):  # stopped by a signal (it saved), or no eval_tasks
            die(f"run {out_dir} ended without eval.json, which the table needs: run the sweep again to continue it "
                f"(its config must set eval_tasks)")

label = f"table{table}" + (f"_{family}" if table == 2 else '')
cmd = [sys.executable, 'tables.py', *results, f'--table_out={os.path.join(out_root, label)}.md']
print(shlex.join(cmd), flush=True)
if not dry_run:
    sys.exit(subprocess.run(cmd, cwd=root).returncode)
