"""
Our checkpoints: the ckpt.pt format (one dict of tensors and plain values), reading it safely, and where a run
keeps them (ckpt.pt, snapshots ckpt_XXXXXX.pt, an FSDP run's ckpt_sharded/).

    from checkpoint import load_checkpoint, save_checkpoint, training_state
    model, ckpt = load_checkpoint('out/')      # the ckpt.pt of a train.py run (an out_dir or a .pt file)
    save_checkpoint(training_state(model, optimizer, scaler, step, config, data_meta, compute), 'out/ckpt.pt')

A checkpoint is data, never code: ckpt.pt holds only tensors, numbers, strings, lists and dicts, and is read with
torch.load(weights_only=True) (torch_load), which refuses anything else (a pickle can otherwise run any code when
loaded). An FSDP run's sharded folder (torch.distributed.checkpoint files and train_state.pt) is parallel.py's
format: parallel.load_checkpoint reads it, and everything load_checkpoint reads, in one process; parallel.py
imports this file, never the reverse.

Next door, one concern each: atomic.py writes files (atomic_write, check_output: imported here, so
`from checkpoint import atomic_write` works), hf_io.py reads and writes Hugging Face folders (from_pretrained,
to_hf), run_dir.py is train.py's out_dir (lock, resume checks, metrics), measure.py orders a hub repository's
revisions. A name that lived here before says where it is now (__getattr__ below).

Tests: python -m pytest -q tests/test_model.py tests/test_trust.py tests/test_parallel.py
"""
import os
import pickle
import re
import warnings

import torch

from atomic import atomic_write, check_output  # noqa: F401 (check_output: for `from checkpoint import check_output`)
from configurator import one_line
from model import GPT, Qwen3


def load_checkpoint(path, device='cpu', trust_checkpoint=False):
    """(model, ckpt) from a train.py out_dir (its ckpt.pt) or a .pt file; the model is float32, in eval mode.
    Raises FileNotFoundError or a one-line ValueError, for a file that is missing, damaged, not ours, or that holds
    anything but tensors and plain values: such a file is refused, never run. trust_checkpoint=True reads it with
    full pickle instead, which runs whatever code it holds: only for a file you made yourself. An FSDP run's
    sharded folder (or an out_dir where that is later than ckpt.pt) is a ValueError naming parallel.load_checkpoint,
    which reads it, and all of the above."""
    if os.path.isdir(path) and not is_sharded(path):
        path = latest_checkpoint(path, training=False)
    if is_sharded(path):  # parallel.py's format: reading it here would make the two files import each other
        raise ValueError(f"{path} is a sharded checkpoint (an FSDP run's): parallel.load_checkpoint reads it "
                         f"(from parallel import load_checkpoint)")
    file = path if os.path.isfile(path) or str(path).endswith('.pt') else os.path.join(path, 'ckpt.pt')
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no checkpoint at {file}")
    ckpt = torch_load(file, trust=trust_checkpoint, hint="; if you made it yourself, --trust_checkpoint=True loads "
                                                         "it with full pickle")
    return model_from_state(ckpt, file, device).eval(), ckpt


def model_from_state(ckpt, file, device='cpu'):
    """The model a checkpoint dict describes ('arch', 'model_args'), float32 on device, holding the dict's 'model'
    tensors if it has them, else freshly initialized (a sharded checkpoint's tensors are read later, into the
    sharded model). A dict that is not ours is a one-line ValueError naming file."""
    try:
        if not isinstance(ckpt, dict) or not {'arch', 'model_args'} <= set(ckpt) \
                or not ('model' in ckpt or 'sharded' in ckpt):
            raise ValueError("it is not a dict with 'arch', 'model_args' and 'model'")
        cls = {c.arch: c for c in (GPT, Qwen3)}.get(ckpt['arch'])
        if cls is None:
            raise ValueError(f"unknown arch {ckpt['arch']!r}")
        config = cls.config_class(**ckpt['model_args'])
        state_dict = ckpt.get('model')
        if state_dict is not None and (not isinstance(state_dict, dict)
                                       or not all(isinstance(v, torch.Tensor) for v in state_dict.values())):
            raise ValueError("'model' is not a dict of tensors")
        for key, kind in (('step', int), ('config', dict), ('data_meta', dict)):  # what the scripts read, if there
            if key in ckpt and not isinstance(ckpt[key], kind):
                raise ValueError(f"'{key}' is not a {kind.__name__}")
        if state_dict is not None:
            with torch.device('meta'):  # shapes first, at no cost: model_args that lie about the size allocate nothing
                check_tensors(cls(config).state_dict(), state_dict, 'its tensors against its model_args')
        with torch.device(device):
            model = cls(config)
        if state_dict is not None:
            model.load_state_dict(state_dict, strict=True)  # copies into our float32 parameters
    except Exception as e:
        raise ValueError(f"checkpoint {file} is not a train.py checkpoint: {one_line(e)}") from None
    return model


def torch_load(file, trust=False, hint='', mmap=False, name=None):
    """torch.load onto the CPU of tensors and plain values only (weights_only=True): a file holding anything else
    is a one-line ValueError (ending with hint), and what it holds never runs. trust=True: full pickle, which runs
    whatever the file holds. mmap=True: tensors are read from disk when used (a step number costs no 32 GB read).
    name: what the messages call it (default: file)."""
    name = file if name is None else name
    try:
        with warnings.catch_warnings():  # a pickle protocol torch.save does not write: the error below says enough
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
            return torch.load(file, map_location='cpu', weights_only=not trust, mmap=mmap)
    except pickle.UnpicklingError as e:
        # torch's message is a page long; keep what it names, e.g. GLOBAL posix.system (a function it would call)
        what = re.search(r'GLOBAL [\w.]+|Unsupported operand \d+', str(e))
        raise ValueError(f"{name} holds more than tensors and plain values ({what[0] if what else 'weights_only'}),"
                         f" so it is not loaded: unpickling it could run code{hint}") from None
    except Exception as e:
        raise ValueError(f"{name} is damaged or not a torch file: {one_line(e)}") from None


def save_checkpoint(ckpt, path):
    """torch.save through atomic_write: a crash while writing leaves the previous checkpoint at `path` intact."""
    atomic_write(path, lambda f: torch.save(ckpt, f))


def training_state(model, optimizer, scaler, step, config, data_meta, compute, weights=None):
    """What train.py writes to ckpt.pt: the model with its architecture (rebuilt without the config file), the
    optimizer and loss scaler, the step, the resolved config, the data's meta.json, where the data stands (the
    windows of a step are a function of (seed, step)), the training time so far (compute: hours, processes,
    device) and the RNG states (dropout, noise). Tensors and plain values only: weights_only=True loads it all.
    weights: the full state dict of a sharded model (parallel.gather_weights); None: model.state_dict().
    optimizer None: weights only, no optimizer, loss scaler or RNG (an FSDP run's ckpt.pt and snapshots, for
    measure.py, eval.py and sample.py; its training state is in its sharded folder, which resume reads)."""
    state = {'arch': model.arch, 'model_args': dict(vars(model.config)),
             'model': model.state_dict() if weights is None else weights, 'step': step, 'config': config,
             'compute': compute,
             'data_meta': data_meta, 'data_position': {'scheme': 'windows of (seed, step)', 'seed': config['seed'],
                                                       'step': step}}
    if optimizer is not None:
        state.update(optimizer=optimizer.state_dict(), scaler=scaler.state_dict(),
                     rng={'torch': torch.get_rng_state(),
                          'cuda': torch.cuda.get_rng_state() if torch.cuda.is_available() else None})
    return state


def restore_rng(ckpt):
    """Continue the random streams of a resumed run where training_state took them."""
    torch.set_rng_state(ckpt['rng']['torch'])
    if torch.cuda.is_available() and ckpt['rng']['cuda'] is not None:
        torch.cuda.set_rng_state(ckpt['rng']['cuda'])


def check_tensors(expected, state_dict, source):
    """A one-line ValueError naming the tensors of state_dict that are missing, extra or of another shape."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    for what, names in (('missing', missing), ('unexpected', unexpected), ('shape mismatch', wrong)):
        if names:
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ''
            raise ValueError(f"{source}: {what} tensor(s): {', '.join(names[:3])}{more}")


# An FSDP run's checkpoint: a folder of torch.distributed.checkpoint files (parallel.save_sharded: each process's
# shards of the model and AdamW state) and train_state.pt (training_state without those tensors, from rank 0).
SHARDED = 'ckpt_sharded'
SHARDED_STATE = 'train_state.pt'


def is_sharded(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, SHARDED_STATE))


def load_sharded_state(folder, device='cpu'):
    """(model, state) from a sharded checkpoint folder: its train_state.pt (weights_only, as every checkpoint), and
    the model it describes, freshly initialized: parallel.load_sharded fills it, once train.py has sharded it."""
    file = os.path.join(folder, SHARDED_STATE)
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no sharded checkpoint at {folder} (no {SHARDED_STATE})")
    state = torch_load(file)
    return model_from_state(state, file, device), state


def latest_checkpoint(out_dir, training=True):
    """out_dir/ckpt.pt or out_dir/ckpt_sharded/ (an FSDP run's), whichever holds the later step. At equal steps:
    for training on (resume), the sharded one, as the ckpt.pt an FSDP run writes at its end holds weights only;
    for the weights alone (training=False), ckpt.pt, one file."""
    file, folder = os.path.join(out_dir, 'ckpt.pt'), os.path.join(out_dir, SHARDED)
    if not is_sharded(folder):
        return file
    if not os.path.isfile(file):
        return folder

    def step(path, mmap=False):  # mmap: ckpt.pt's tensors stay on disk, unread
        ckpt = torch_load(path, mmap=mmap)
        return ckpt.get('step', -1) if isinstance(ckpt, dict) else -1
    file_step, folder_step = step(file, mmap=True), step(os.path.join(folder, SHARDED_STATE))
    return file if file_step > folder_step or (file_step == folder_step and not training) else folder


def is_run(path):
    """A train.py out_dir: a folder holding ckpt.pt, an FSDP run's ckpt_sharded/, or step snapshots ckpt_*.pt."""
    return os.path.isdir(path) and (os.path.isfile(os.path.join(path, 'ckpt.pt')) or is_sharded(os.path.join(
        path, SHARDED)) or any(re.fullmatch(r'ckpt_\d+\.pt', f) for f in os.listdir(path)))


def run_dirs(path):
    """What --ckpt=path names: [path] for a run, a checkpoint file or a sharded folder (a missing path too: the
    loader says so); for a folder of runs (out/ after the paper's configs or sweep.py), its sub-folders that are
    runs, by name. A folder that is neither is a one-line FileNotFoundError."""
    if not os.path.isdir(path) or is_run(path) or is_sharded(path):
        return [path]
    entries = sorted(os.listdir(path))
    runs = [os.path.join(path, e) for e in entries if is_run(os.path.join(path, e))]
    if not runs:
        raise FileNotFoundError(f"no checkpoint at '{path}': " + (
            "the folder is empty" if not entries else
            "it holds no ckpt.pt, and no sub-folder of it is a train.py run (holds ckpt.pt or ckpt_sharded/)"))
    return runs

# -----------------------------------------------------------------------------
# names that lived in this file before, and where they are now: importing one is an ImportError that says so

MOVED = {**{name: 'hf_io' for name in ('from_pretrained', 'to_hf', 'load_exact', 'hf_model_type', 'load_causal_lm',
                                       'HF_MODELS', 'HFMapping', 'HF_WEIGHTS', 'GPT2_CONV1D', 'gpt2_config_from_hf',
                                       'gpt2_state_dict_from_hf', 'gpt2_to_hf', 'qwen3_config_from_hf',
                                       'qwen3_state_dict_from_hf', 'qwen3_to_hf')},
         **{name: 'run_dir' for name in ('claim_out_dir', 'check_resume', 'model_keys', 'open_metrics', 'SHAPE_KEYS',
                                         'START_KEYS', 'TRAIN_OUTPUTS')},
         **{name: 'atomic' for name in ('rescued', 'clean_stale')},
         **{name: 'measure' for name in ('hub_revisions', 'revision_order')}}


def __getattr__(name):
    # ImportError, not AttributeError: `from checkpoint import to_hf` would turn an AttributeError into Python's
    # "cannot import name", losing the new home
    if name in MOVED:
        raise ImportError(f"checkpoint.{name} moved to {MOVED[name]}.py: from {MOVED[name]} import {name}")
    raise AttributeError(f"module 'checkpoint' has no attribute '{name}'")
