"""
train.py's out_dir: one writer at a time (an flock), no run replaced by mistake, the checks of a resume, and
metrics.jsonl kept in step with the checkpoint. Only train.py imports this file; it is apart from train.py so that
the training loop reads top to bottom without a page of file-system policy in the middle.

    lock = claim_out_dir(out_dir, resume=init_from == 'resume', overwrite=overwrite)   # held while the run lasts
    changes = check_resume(ckpt, model, config, given_keys, data_meta)                 # {key: [checkpoint's, now]}
    metrics_file = open_metrics(out_dir, resume_step=step)
    write_run_json(out_dir, config, resumed, versions(world_size, device_name), data_meta, model)  # run.json

Tests: python -m pytest -q tests/test_train.py tests/test_trust.py tests/test_resume_configs.py
"""
import fcntl
import glob
import json
import os
import shutil
import subprocess
import sys

from atomic import atomic_write, check_output, clean_stale
from checkpoint import SHARDED
from configurator import one_line


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
