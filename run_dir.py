"""
train.py's out_dir and what it checks before it writes there: the constraints between keys, one writer at a time
(an flock), no run replaced by mistake, the checks of a resume; and what the run records there (RunLog: run.json,
metrics.jsonl kept in step with the checkpoint, wandb, training.png, eval.json, condensation.json, the training
clock). Only train.py imports this file; it is apart from train.py so that the training loop reads top to bottom
without pages of file-system policy and logging in the middle.

    lock = claim_out_dir(out_dir, resume=init_from == 'resume', overwrite=overwrite)   # held while the run lasts
    problem = key_problem(config, world_size, distributed)                             # None, or what is wrong
    changes = check_resume(ckpt, model, config, given_keys, data_meta)                 # {key: [checkpoint's, now]}
    log = RunLog(out_dir, config, data_meta, model, world_size, device_name, resume_ckpt, changes)
    log({'step': 10, 'train_loss': 2.5}, "step 10 | loss 2.5000")                      # metrics.jsonl, wandb, console

Tests: python -m pytest -q tests/test_train.py tests/test_trust.py tests/test_resume_configs.py
"""
import contextlib
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys
import time

from atomic import atomic_write, check_output, clean_stale
from checkpoint import SHARDED
from configurator import die, one_line


# train.py's keys that describe the model of a scratch run; on resume the checkpoint's model decides them
SHAPE_KEYS = ('arch', 'n_layer', 'n_head', 'n_embd', 'mlp_hidden', 'n_kv_head', 'head_dim', 'rope_theta', 'bias')
# how a run was started, not what it trains: never reported as a change on resume
START_KEYS = ('init_from', 'overwrite', 'trust_checkpoint', 'dry_run')


def model_keys(model):
    """The model in train.py's shape keys, the defaults worked out (mlp_hidden None = 4 * n_embd for GPT): what the
    keys given on a resume must agree with. Only the keys its architecture uses."""
    c = model.config
    if model.arch == 'gpt':
        return dict(arch='gpt', n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                    mlp_hidden=c.mlp_hidden or 4 * c.n_embd, bias=c.bias)
    return dict(arch='qwen3', n_layer=c.num_hidden_layers, n_head=c.num_attention_heads, n_embd=c.hidden_size,
                mlp_hidden=c.intermediate_size, n_kv_head=c.num_key_value_heads, head_dim=c.head_dim,
                rope_theta=c.rope_theta)


def check_resume(ckpt, model, config, given, data_meta):
    """The checks of train.py --init_from=resume. The checkpoint decides the model: a shape key given (in the config
    file or on the command line) must agree with it, and one not given takes the checkpoint's recorded value. Every
    other key may change (learning rate, max_iters, intervals, the dataset if its tokenizer is the same). Returns
    {key: [checkpoint's, now]} for each key that changed; config is updated in place. Raises a one-line ValueError
    naming the key and both values."""
    needed = ('step', 'config', 'data_meta', 'rng') + (() if 'sharded' in ckpt else ('optimizer',))  # or in DCP's files
    missing = [k for k in needed if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint lacks the training state to resume: no {', '.join(missing)}")
    if ckpt['data_meta'].get('tokenizer') != data_meta['tokenizer']:
        raise ValueError(f"checkpoint was trained on tokenizer '{ckpt['data_meta'].get('tokenizer')}' but the "
                         f"dataset uses '{data_meta['tokenizer']}'")
    has = model_keys(model)
    wants = {**has, **{k: config[k] for k in given if k in has}}
    if wants['arch'] == has['arch']:  # None means a default: worked out as build_model does
        wants['mlp_hidden'] = wants['mlp_hidden'] or (4 if has['arch'] == 'gpt' else 3) * wants['n_embd']
        if has['arch'] == 'qwen3':
            wants['n_kv_head'] = wants['n_kv_head'] or wants['n_head']
            wants['head_dim'] = wants['head_dim'] or wants['n_embd'] // wants['n_head']
    for key in has:  # arch first
        if wants[key] != has[key]:
            raise ValueError(f"--{key}={config[key]!r} contradicts the checkpoint, whose model has {key}={has[key]!r}"
                             f" (on resume, leave the model's keys out or give the checkpoint's values)")
    old = ckpt['config']
    config.update({k: old[k] for k in SHAPE_KEYS if k in old and k not in given})
    return {k: [old[k], v] for k, v in config.items() if k in old and k not in START_KEYS and old[k] != v}

# -----------------------------------------------------------------------------
# one writer at a time, no run replaced by mistake, metrics that match the checkpoint


# what train.py writes in its out_dir through atomic_write (measure.py's figures among them): whose temporary files
# a killed run leaves, and the next run there removes
TRAIN_OUTPUTS = ('ckpt*.pt', 'run.json', 'metrics.jsonl', 'eval.json', 'condensation.json', 'condensation.csv',
                 '*.png')


def key_problem(c, world_size, distributed):
    """What is wrong with train.py's resolved config c (a dict of its keys) on world_size processes (distributed:
    started by torchrun, whatever their number), in one line, or None: the constraints between keys, checked before
    anything is read or written (each key's own allowed values are its annotation in train.py, checked by
    configure)."""
    if c['wandb_log']:
        try:
            import wandb  # noqa: F401
        except ImportError:
            return "wandb_log=True but the wandb package is not installed: pip install wandb, or drop --wandb_log"
    scratch, fsdp = c['init_from'] == 'scratch', c['parallel'] == 'fsdp'
    if scratch and c['arch'] == 'gpt' and c['n_embd'] % c['n_head']:
        return f"n_embd={c['n_embd']} must be a multiple of n_head={c['n_head']} (arch='gpt' splits n_embd across " \
               f"the heads)"
    if scratch and c['arch'] == 'qwen3' and c['n_head'] % (c['n_kv_head'] or c['n_head']):
        return f"n_head={c['n_head']} must be a multiple of n_kv_head={c['n_kv_head']} (each key/value head serves " \
               f"a group)"
    if c['reg'] != 'none' and c['reg_impl'] == 'tiled':  # a fast path that no longer equals losses.py is refused
        import losses_tiled
        try:
            losses_tiled.choose_impl(c['reg'], 'tiled', c['block_size'], 'cpu', tau=c['reg_tau'], clamp=c['reg_clamp'])
        except ValueError as e:
            return one_line(e)
    try:  # an out_dir that cannot be one is found now, not after the data and the model are loaded
        check_output(c['out_dir'], 'out_dir', folder=True)
    except ValueError as e:
        return str(e)
    from condensation import parse_measures
    try:
        parse_measures(c['eval_measures'])
    except ValueError as e:
        return f"eval_measures: {one_line(e)}"
    if fsdp and c['dtype'] == 'float16':
        return "parallel='fsdp' trains in bfloat16 or float32: float16 would need a sharded loss scaler, which " \
               "train.py does not have"
    if fsdp and distributed and c['eval_tasks'] and (c['lm_eval_interval'] > 0 or c['lm_eval_at_start']):
        return "lm-eval during training needs the whole model in one process, which FSDP does not have: keep " \
               "snapshots (--snapshot_interval) and run eval.py on them, or set --lm_eval_interval=0 " \
               "--lm_eval_at_start=False"
    if c['gradient_accumulation_steps'] % world_size:
        return f"gradient_accumulation_steps={c['gradient_accumulation_steps']} must be divisible by the " \
               f"{world_size} processes"
    return None


def claim_out_dir(out_dir, resume, overwrite):
    """Make out_dir this run's before anything is written to it. Returns the lock, to keep open while the run
    lasts: an flock that the kernel drops when the process ends, however it ends (a SIGKILL leaves no stale lock).
    Raises a one-line error, having written nothing but the lock file, when there is no checkpoint to resume, when a
    new run would replace another run's checkpoints without overwrite, or when another train.py holds the lock."""
    ckpt, sharded = os.path.join(out_dir, 'ckpt.pt'), os.path.join(out_dir, SHARDED)
    check_output(out_dir, 'out_dir', folder=True)
    if resume and not (os.path.isfile(ckpt) or os.path.isdir(sharded) or os.path.isdir(sharded + '.old')):
        raise FileNotFoundError(f"no checkpoint at {ckpt} (nor {SHARDED}/) to resume")
    os.makedirs(out_dir, exist_ok=True)
    lock = open(os.path.join(out_dir, 'train.lock'), 'a+')  # never deleted: deleting would race a new locker
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or '?'
        lock.close()
        raise ValueError(f"{out_dir} is in use by another train.py (pid {holder}); wait for it to end, or choose "
                         f"another --out_dir") from None
    except OSError as e:  # a file system without locks (Lustre mounted without -o flock, some NFS)
        print(f"WARNING: cannot lock {out_dir} ({one_line(e)}): a second train.py there would not be refused")
    if os.path.isdir(sharded + '.old') and not os.path.isdir(sharded):  # killed between save_sharded's renames
        os.rename(sharded + '.old', sharded)
    checkpoints = sorted(glob.glob(os.path.join(out_dir, 'ckpt*.pt')) + ([sharded] if os.path.isdir(sharded) else []))
    if not resume and checkpoints and not overwrite:
        lock.close()
        raise ValueError(f"{out_dir} holds another run's checkpoint ({os.path.basename(checkpoints[0])}): continue "
                         f"it with --init_from=resume, replace it with --overwrite=True, or choose another --out_dir")
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    # left by a kill in the middle of a save (atomic_write's temporary files of what train.py writes, a sharded
    # save's folders), or by the run being replaced
    clean_stale(out_dir, TRAIN_OUTPUTS)
    stale = [p for p in glob.glob(os.path.join(out_dir, 'ckpt*.pt.*.tmp')) + [sharded + '.tmp', sharded + '.old']
             if os.path.exists(p)]
    for path in stale + (checkpoints if not resume else []):
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return lock


def open_metrics(out_dir, resume_step=None):
    """metrics.jsonl, open for appending. On resume, the records past the checkpoint's step are dropped first (a run
    that died after its last save logged them, and the resumed run logs those steps again), as is a last line cut
    short by a kill; the file is rewritten atomically. Otherwise the file starts empty."""
    path = os.path.join(out_dir, 'metrics.jsonl')
    kept = []
    if resume_step is not None and os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    if json.loads(line)['step'] <= resume_step:
                        kept.append(line if line.endswith('\n') else line + '\n')
                except (ValueError, KeyError, TypeError):
                    pass  # a line cut short
    atomic_write(path, ''.join(kept))
    return open(path, 'a')


def versions(world_size, device_name):
    """What ran: Python, torch, numpy and CUDA versions, the git commit of this code (None outside a checkout), the
    process count and the device; printed at the start and kept in run.json."""
    import numpy as np
    import torch
    git = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    return {'python': sys.version.split()[0], 'torch': torch.__version__, 'numpy': np.__version__,
            'cuda': torch.version.cuda, 'git': git, 'world_size': world_size, 'device': device_name}


def write_run_json(out_dir, config, resumed, versions, data_meta, model):
    """out_dir/run.json (atomic): the resolved config, how it was resumed ({} for a new run), the versions, the
    data's meta.json and the model trained (its architecture, arguments and parameter count)."""
    atomic_write(os.path.join(out_dir, 'run.json'), json.dumps({
        'config': config, **resumed, 'versions': versions, 'data_meta': data_meta,
        'model': {'arch': model.arch, 'model_args': dict(vars(model.config)), 'num_params': model.num_params()}},
        indent=2))


class RunLog:
    """What a run records as it goes. On the master (active=True): run.json at the start, then metrics.jsonl (one
    JSON object per record: train steps, evals, lm-eval), wandb when config['wandb_log'], the console, training.png
    redrawn from metrics.jsonl (figures.plot_training), and at the end condensation.json and eval.json; elsewhere
    (active=False) logging and drawing do nothing. On every process: the training clock (compute, not_training),
    which starts when the log is made, after the start-up (git, wandb, run.json) and before the loop.

    wandb: the run id is config['wandb_run_id'] ('' = the resumed checkpoint's, or a new one), set into config
    before run.json and every checkpoint record it, so that a resumed run continues the same wandb run.
    resume_ckpt, resume_changes: the checkpoint of a resume and check_resume's changes (run.json records both;
    open_metrics drops the records a crashed run logged past the checkpoint's step), None for a new run."""

    def __init__(self, out_dir, config, data_meta, model, world_size, device_name, resume_ckpt=None,
                 resume_changes=None, active=True):
        self.out_dir, self.active, self.wandb = out_dir, active, None
        if active:
            self._start(config, data_meta, model, versions(world_size, device_name), resume_ckpt, resume_changes)
        self.t_start, self.paused, self.processes, self.device_name = time.time(), 0.0, world_size, device_name
        self.hours_before = ((resume_ckpt or {}).get('compute') or {}).get('hours', 0.0)

    def _start(self, config, data_meta, model, run_versions, resume_ckpt, resume_changes):
        print(f"versions: {json.dumps(run_versions)}")
        resumed = {}
        if resume_ckpt is not None:  # continue the wandb run of the checkpoint, unless an id is given
            if config['wandb_log'] and not config['wandb_run_id']:
                config['wandb_run_id'] = resume_ckpt['config'].get('wandb_run_id') or ''
                resume_changes.pop('wandb_run_id', None)
            resumed = {'resumed_from_step': resume_ckpt['step'], 'resumed_with_changes': resume_changes}
            if resume_changes:
                print("resumed with changes to the checkpoint's config: "
                      + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in resume_changes.items()))
        if config['wandb_log']:
            import wandb
            config['wandb_run_id'] = config['wandb_run_id'] or wandb.util.generate_id()
            wandb.init(project=config['wandb_project'], name=config['wandb_run_name'] or None,
                       id=config['wandb_run_id'], resume='allow', config=config)
            self.wandb = wandb
        write_run_json(self.out_dir, config, resumed, run_versions, data_meta, model)
        self.file = open_metrics(self.out_dir, resume_ckpt['step'] if resume_ckpt is not None else None)

    def compute(self):
        """The run's training time as the paper's Table 2 reports it (tables.py's compute column): the wall time
        since this log began (the training loop, its val evals and saves), times the processes, summed over resumes.
        Time spent in not_training() (lm-eval) is left out, as is the final condensation measurement, as the
        official runs' record leaves out their evaluation callback. ckpt.pt and eval.json carry the same record."""
        return {'hours': self.hours_before + (time.time() - self.t_start - self.paused) * self.processes / 3600,
                'processes': self.processes, 'device': self.device_name}

    @contextlib.contextmanager
    def not_training(self):
        """The time spent inside is left out of compute(): lm-eval during and at the end of training."""
        t0 = time.time()
        try:
            yield
        finally:
            self.paused += time.time() - t0

    def __call__(self, record, line):
        """One record to metrics.jsonl and wandb, one line to the console. A record that cannot be written (a full
        disk) stops the run with its last checkpoint intact, rather than let it train unrecorded."""
        if not self.active:
            return
        try:
            self.file.write(json.dumps(record) + '\n')
            self.file.flush()
        except OSError as e:
            die(f"could not write {self.file.name} at step {record['step']}: {one_line(e)}")
        if self.wandb is not None:
            self.wandb.log(record, step=record['step'])
        print(line, flush=True)

    def train_step(self, record, max_iters, reg, eta_min):
        """A train step's record (train.py's loop: its keys, None where off) logged, with its console line."""
        r = {k: v for k, v in record.items() if v is not None}
        line = f"step {r['step']}/{max_iters} | loss {r['train_loss']:.4f}"
        line += f" | {reg} {r['reg_loss']:.4f}" if 'reg_loss' in r else ''
        line += f" | kd {r['kd_loss']:.4f}" if 'kd_loss' in r else ''
        line += f" | lr {r['lr']:.2e} | {r['ms_per_step']:.0f}ms | {r['tokens_per_s'] / 1e3:.1f}k tok/s"
        line += f" | mfu {r['mfu']:.1%}" if r.get('mfu') else ''
        self(r, line + f" | eta {eta_min:.1f}min")

    def lm_eval(self, step, results):
        """An lm-eval of the model at `step` (lm-eval's per-task metrics, its 'results'): logged, so that a resume
        keeps it (and drops those past its checkpoint), with the score tables.py reports for each task."""
        from tables import reported
        scores = {task: reported(task, m) for task, m in results.items()}
        self({'step': step, 'lm_eval': results},
             f"lm-eval step {step} | " + ' '.join(f"{t} {v[1]:.4f}" for t, v in scores.items() if v))

    def write_eval(self, record):
        """eval.json (tables.py reads it): record (seed, config, compute and lm-eval's results of the final model)
        with `history`, every lm-eval of the run, resumes included, read back from metrics.jsonl: [{'step',
        'results'}, ...]. If it cannot be written, its content goes elsewhere and the error says where. -> the
        number of evaluations in the history."""
        from eval import to_json
        from figures import read_metrics
        history = [{'step': r['step'], 'results': r['lm_eval']} for r in read_metrics(self.file.name)
                   if isinstance(r.get('lm_eval'), dict)]
        try:
            atomic_write(os.path.join(self.out_dir, 'eval.json'), to_json({**record, 'history': history}), rescue=True)
        except OSError as e:
            die(str(e))
        return len(history)

    def write_condensation(self, result):
        """condensation.json, .csv and the figures of the end-of-run measurement (records.write_outputs), kept
        elsewhere if out_dir is gone or full, and the error says where."""
        from records import write_outputs
        try:
            write_outputs([result], self.out_dir, rescue=True)
        except OSError as e:
            die(str(e))

    def draw(self):
        """training.png: the losses, lr, grad norm and the per-layer probe over steps, from metrics.jsonl (`python
        figures.py <out_dir>` draws it too). A figure that cannot be drawn is a note, never the end of a run."""
        if not self.active:
            return
        from figures import plot_training, read_metrics
        try:
            plot_training(read_metrics(self.file.name), os.path.join(self.out_dir, 'training.png'),
                          title=os.path.basename(os.path.normpath(self.out_dir)))
        except Exception as e:  # noqa: BLE001 (matplotlib missing or failing, a full disk: training goes on)
            print(f"note: training.png not drawn: {one_line(e)}")

    def close(self):
        if self.active:
            self.file.close()
            if self.wandb is not None:
                self.wandb.finish()
