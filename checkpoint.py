"""
Everything that reads or writes files for the models: model.py itself does no I/O.

    from checkpoint import atomic_write, load_checkpoint, save_checkpoint, from_pretrained
    model, ckpt = load_checkpoint('out/')      # the ckpt.pt of a train.py run (an out_dir or a .pt file)
    model, ckpt = load_checkpoint('out/ckpt_sharded')  # or an FSDP run's sharded checkpoint, read by one process
    model = from_pretrained('gpt2')            # a hub id or a local Hugging Face directory -> GPT or Qwen3
    hf_model = model.to_hf()                   # -> transformers GPT2LMHeadModel / Qwen3ForCausalLM, same weights

In order: atomic_write (every output of every script goes through it), our checkpoints, what train.py does to keep
its out_dir safe, Hugging Face directories, then the mapping between Hugging Face's weights and ours, one block per
model family. Our module names are Hugging Face's, so the mapping is short: GPT-2's four Conv1D weights are stored
transposed, a base-model checkpoint lacks the 'transformer.' / 'model.' prefix, and a tied lm_head may be absent.

A checkpoint is data, never code: ckpt.pt holds only tensors, numbers, strings, lists and dicts, and is read with
torch.load(weights_only=True), which refuses anything else (a pickle can otherwise run any code when loaded). The
sharded folders of FSDP runs (torch.distributed.checkpoint files) are read as safely by parallel.load_sharded.
"""
import fcntl
import fnmatch
import glob
import json
import os
import pickle
import re
import shutil
import warnings
from dataclasses import replace
from typing import Callable, NamedTuple

import torch

from configurator import one_line
from model import GPT, Qwen3


def atomic_write(path, content):
    """Write content to path atomically. content: str (text), bytes, or a function f(file) that writes to a
    binary file object (torch.save, fig.savefig, ...). The folder must exist. A reader never sees half a file;
    a crash, a kill or a full disk while writing leaves the previous file intact and no temporary file."""
    tmp = f"{path}.{os.getpid()}.tmp"  # same folder: os.replace never crosses file systems; pid: no clash
    try:
        with open(tmp, 'wb') as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a power cut cannot leave an empty file in its place
        os.replace(tmp, path)  # atomic on POSIX and Windows
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)

# -----------------------------------------------------------------------------
# our checkpoints: one dict per file, {'arch', 'model_args', 'model', 'optimizer', 'step', 'config', ...}


def load_checkpoint(path, device='cpu', trust_checkpoint=False):
    """(model, ckpt) from a train.py out_dir (its ckpt.pt, or ckpt_sharded/ where that is later: an FSDP run stopped
    before its end), a .pt file, or a sharded checkpoint folder (read whole by this one process); the model is
    float32, in eval mode. Raises FileNotFoundError or a one-line ValueError, for a file that is missing, damaged,
    not ours, or that holds anything but tensors and plain values: such a file is refused, never run.
    trust_checkpoint=True reads it with full pickle instead, which runs whatever code it holds: only for a file you
    made yourself."""
    if os.path.isdir(path) and not is_sharded(path):
        path = latest_checkpoint(path, training=False)
    if is_sharded(path):
        from parallel import load_sharded  # torch.distributed's checkpoint reader, only when needed
        model, state = load_sharded_state(path, device)
        load_sharded(path, model, alone=True)
        return model.eval(), state
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
# train.py's out_dir: one writer at a time, no run replaced by mistake, metrics that match the checkpoint


def claim_out_dir(out_dir, resume, overwrite):
    """Make out_dir this run's before anything is written to it. Returns the lock, to keep open while the run
    lasts: an flock that the kernel drops when the process ends, however it ends (a SIGKILL leaves no stale lock).
    Raises a one-line error, having written nothing but the lock file, when there is no checkpoint to resume, when a
    new run would replace another run's checkpoints without overwrite, or when another train.py holds the lock."""
    ckpt, sharded = os.path.join(out_dir, 'ckpt.pt'), os.path.join(out_dir, SHARDED)
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
    # left by a kill in the middle of a save (atomic_write's temporary files, a sharded save's folders), or by the
    # run being replaced
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

# -----------------------------------------------------------------------------
# Hugging Face directories: config.json + safetensors (or pytorch_model.bin), a hub id or a local folder


def from_pretrained(name_or_path, model_class=None, **overrides):
    """GPT or Qwen3 from a hub id or a local HF directory, chosen by config.json's model_type; float32, eval mode.
    model_class: require that class (GPT.from_pretrained passes GPT). overrides set config fields, e.g.
    dropout=0.1 (HF's dropout is not read) or a smaller block_size."""
    directory = _hf_directory(name_or_path)
    hf_config = _read_hf_config(directory)
    model_type = hf_config.get('model_type')
    if model_class is not None:
        expected = next((t for t, m in HF_MODELS.items() if issubclass(model_class, m.model_class)), None)
        if expected is None:
            raise ValueError(f"no Hugging Face mapping for {model_class.__name__}")
        if model_type != expected:
            raise ValueError(f"{directory} holds model_type '{model_type}', not '{expected}'")
    elif model_type not in HF_MODELS:
        raise ValueError(f"unsupported model_type '{model_type}' in {directory}; supported: {', '.join(HF_MODELS)}")
    mapping = HF_MODELS[model_type]
    model_class = model_class or mapping.model_class
    unknown = sorted(set(overrides) - set(model_class.config_class.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown {model_class.config_class.__name__} field(s) {unknown} in overrides")
    try:
        config = model_class.config_class(**mapping.config_from_hf(hf_config))
        model = model_class(replace(config, **overrides))
    except ValueError:
        raise
    except Exception as e:  # values of the wrong type or size in config.json
        raise ValueError(f"{directory}/config.json does not describe a {model_class.__name__}: {one_line(e)}") from None
    load_exact(model, mapping.state_dict_from_hf(_read_hf_weights(directory), model.config), directory)
    return model.eval()


def to_hf(model):
    """The equivalent transformers model of our GPT or Qwen3 (float32, CPU, eval), for save_pretrained and lm-eval."""
    mapping = next((m for m in HF_MODELS.values() if isinstance(model, m.model_class)), None)
    if mapping is None:
        raise ValueError(f"no Hugging Face mapping for {type(model).__name__}")
    return mapping.to_hf(model)


def load_exact(model, state_dict, source):
    """Load every tensor of `model` from state_dict, with no tensor missing, extra or of another shape."""
    check_tensors(model.state_dict(), state_dict, source)
    model.load_state_dict(state_dict, strict=True)  # copies into our float32 parameters


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


HF_WEIGHTS = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json']


def _hf_directory(name_or_path):
    """A local directory as is; otherwise a hub id, fetched (or found in the local HF cache) with only the
    files we read: safetensors, or pytorch_model*.bin for old repos that have no safetensors."""
    if os.path.isdir(name_or_path):
        return name_or_path
    if os.path.exists(name_or_path) or name_or_path.startswith(('.', '/', '~')):
        raise ValueError(f"'{name_or_path}' is not a directory holding config.json and weights")
    try:
        from huggingface_hub import snapshot_download
        directory = snapshot_download(name_or_path, allow_patterns=['config.json', '*.safetensors',
                                                                    '*.safetensors.index.json'])
        if not any(f.endswith('.safetensors') for f in os.listdir(directory)):
            directory = snapshot_download(name_or_path, allow_patterns=['config.json', 'pytorch_model*.bin',
                                                                        'pytorch_model.bin.index.json'])
    except Exception as e:
        raise ValueError(f"could not download '{name_or_path}' from the Hugging Face hub (offline?); pass a local "
                         f"directory with config.json and *.safetensors (e.g. saved with save_pretrained)") from e
    return directory


def _read_json(path):
    """A JSON object from a file of a model directory; a one-line ValueError naming the file if it is not one."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:  # unreadable, truncated, not JSON, not UTF-8
        raise ValueError(f"could not read {path}: {one_line(e)}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_hf_config(directory):
    path = os.path.join(directory, 'config.json')
    if not os.path.isfile(path):
        raise ValueError(f"no config.json in {directory}")
    return _read_json(path)


def _read_hf_weights(directory):
    """Every tensor of an HF directory, as float32 whatever the stored dtype (bf16 on the hub for Qwen3)."""
    name = next((n for n in HF_WEIGHTS if os.path.isfile(os.path.join(directory, n))), None)
    if name is None:
        raise ValueError(f"no weights in {directory}: expected one of {', '.join(HF_WEIGHTS)}")
    if name.endswith('.index.json'):  # sharded: the index maps each tensor to its shard
        index = _read_json(os.path.join(directory, name))
        if not isinstance(index.get('weight_map'), dict):
            raise ValueError(f"{os.path.join(directory, name)} has no 'weight_map'")
        shards = sorted(set(map(str, index['weight_map'].values())))
        if any(os.path.basename(s) != s for s in shards):  # a shard is a file of this directory, nowhere else
            raise ValueError(f"{os.path.join(directory, name)} names shards outside {directory}")
    else:
        shards = [name]
    state_dict = {}
    for shard in shards:
        path = os.path.join(directory, shard)
        try:
            if shard.endswith('.safetensors'):
                from safetensors.torch import load_file
                part = load_file(path)
            else:
                part = torch_load(path)  # tensors only: a pickle's code never runs
            state_dict.update({k: v.float() for k, v in part.items()})
        except Exception as e:
            raise ValueError(f"could not read {path}: {one_line(e)}") from None
    return state_dict


def _need(hf_config, key):
    if key not in hf_config:
        raise ValueError(f"config.json lacks '{key}'")
    return hf_config[key]


def _tied_head(state_dict, embed_key, source):
    # a tied checkpoint may store lm_head.weight or not (HF >= 5 does not); if it does, it must be the embedding
    if embed_key in state_dict:
        head = state_dict.setdefault('lm_head.weight', state_dict[embed_key])
        if not torch.equal(head, state_dict[embed_key]):
            raise ValueError(f"{source}: lm_head.weight differs from {embed_key} but the config ties them")
    return state_dict

# -----------------------------------------------------------------------------
# any other Hugging Face causal LM (measure.py), and the revisions of a hub repository


def hf_model_type(name, revision=None):
    """model_type from config.json of a local dir or a hub id, without importing transformers (seconds)."""
    if os.path.isdir(name):
        path = os.path.join(name, 'config.json')
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no config.json in '{name}'")
    else:
        from huggingface_hub import hf_hub_download
        path = hf_hub_download(name, 'config.json', revision=revision)
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return config.get('model_type')


def load_causal_lm(name, revision=None, dtype=torch.float32, trust_remote_code=False, **placement):
    """Any Hugging Face causal LM through transformers' AutoModelForCausalLM, loaded straight in dtype (a 32B model
    in bf16 needs 64 GB, not 128) and placed by accelerate's big-model inference when placement holds device_map,
    max_memory, offload_folder. Its own modeling code (config.json's auto_map) runs only with trust_remote_code."""
    from transformers import AutoModelForCausalLM
    try:
        return AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=dtype,
                                                    trust_remote_code=trust_remote_code, **placement)
    except ValueError as e:  # transformers names its argument; ours is a flag
        if 'trust_remote_code' in str(e) and not trust_remote_code:
            raise ValueError("it runs its own modeling code (config.json's auto_map): read that code, then "
                             "pass --trust_remote_code=True") from e
        raise


def revision_order(branch):
    """Training order of a hub branch: (stage, training tokens, step, name), each number where the name says it:
    'stage1-step10000-tokens42B' (OLMo 2) -> (1, 42e9, 10000, ...). OLMo 3's branches name no tokens
    ('stage1-step1413814'); within a stage, the step orders them as the tokens would. Missing numbers sort last."""
    number = lambda pattern: float(m.group(1)) if (m := re.search(pattern, branch)) else float('inf')
    unit = re.search(r'tokens\d+(?:\.\d+)?([KMBT]?)', branch)
    tokens = number(r'tokens(\d+(?:\.\d+)?)') * {'K': 1e3, 'M': 1e6, 'B': 1e9, 'T': 1e12}.get(unit and unit[1], 1)
    return number(r'stage(\d+)'), tokens, number(r'step(\d+)'), branch


def hub_revisions(name):
    """'id@pattern' with a glob pattern (*, ?, [...]) -> ['id@branch', ...]: the repository's branches that match
    (huggingface_hub.list_repo_refs), in training order; any other name -> [name]."""
    repo, _, pattern = name.partition('@')
    if not any(c in pattern for c in '*?[') or os.path.exists(name):
        return [name]
    from huggingface_hub import list_repo_refs
    try:
        branches = [b.name for b in list_repo_refs(repo).branches]
    except Exception as e:
        raise ValueError(f"cannot list the revisions of '{repo}' on the hub (offline?): {one_line(e)}") from e
    found = sorted((b for b in branches if fnmatch.fnmatchcase(b, pattern)), key=revision_order)
    if not found:
        raise ValueError(f"no revision of '{repo}' matches '{pattern}' (it has {len(branches)} branches)")
    return [f"{repo}@{b}" for b in found]


# -----------------------------------------------------------------------------
# GPT-2 (model_type 'gpt2') <-> model.GPT

GPT2_CONV1D = ('attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight')  # HF: [in, out]


def gpt2_config_from_hf(hf):
    """config.json (a dict) -> GPTConfig's fields."""
    for key, supported in [('activation_function', 'gelu_new'), ('scale_attn_weights', True),
                           ('scale_attn_by_inverse_layer_idx', False), ('add_cross_attention', False),
                           ('tie_word_embeddings', True)]:
        if hf.get(key, supported) != supported:
            raise ValueError(f"GPT-2 config.json has {key}={hf[key]!r}; only {supported!r} is supported")
    return dict(block_size=hf.get('n_positions', 1024), vocab_size=_need(hf, 'vocab_size'),
                n_layer=_need(hf, 'n_layer'), n_head=_need(hf, 'n_head'), n_embd=_need(hf, 'n_embd'),
                mlp_hidden=hf.get('n_inner'), layer_norm_eps=hf.get('layer_norm_epsilon', 1e-5))


def gpt2_state_dict_from_hf(hf_state_dict, config):
    state_dict = {}
    for key, tensor in hf_state_dict.items():
        if key.endswith(('.attn.bias', '.attn.masked_bias')):
            continue  # causal-mask buffers of old checkpoints, not weights
        if key != 'lm_head.weight' and not key.startswith('transformer.'):
            key = 'transformer.' + key  # base-model checkpoints (GPT2Model) lack the prefix
        state_dict[key] = tensor.t() if key.endswith(GPT2_CONV1D) else tensor
    wpe = state_dict.get('transformer.wpe.weight')
    if wpe is not None and wpe.size(0) > config.block_size:  # a smaller block_size was asked for
        state_dict['transformer.wpe.weight'] = wpe[:config.block_size]
    return _tied_head(state_dict, 'transformer.wte.weight', 'GPT-2 weights')


def gpt2_to_hf(model):
    """The equivalent transformers GPT2LMHeadModel (float32, CPU, eval). bias=False exports zero biases."""
    from transformers import GPT2Config, GPT2LMHeadModel
    c = model.config
    eot = 50256 if c.vocab_size > 50256 else None  # GPT-2's <|endoftext|>, when the vocabulary has it
    hf_config = GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        n_inner=c.mlp_hidden, activation_function='gelu_new', resid_pdrop=c.dropout, embd_pdrop=c.dropout,
        attn_pdrop=c.dropout, layer_norm_epsilon=c.layer_norm_eps, tie_word_embeddings=True,
        bos_token_id=eot, eos_token_id=eot, attn_implementation='sdpa')
    hf_model = GPT2LMHeadModel(hf_config)
    state_dict = {k: v.t() if k.endswith(GPT2_CONV1D) else v for k, v in model.state_dict().items()}
    for k, v in hf_model.state_dict().items():
        state_dict.setdefault(k, torch.zeros_like(v))  # only the biases, when bias=False
    hf_model.load_state_dict({k: v.detach().float().cpu() for k, v in state_dict.items()}, strict=True)
    return hf_model.eval()

# -----------------------------------------------------------------------------
# Qwen3 (model_type 'qwen3') <-> model.Qwen3


def qwen3_config_from_hf(hf):
    """config.json (a dict) -> Qwen3Config's fields."""
    if hf.get('use_sliding_window'):
        raise ValueError("Qwen3 config.json enables sliding-window attention (use_sliding_window); not supported")
    if hf.get('hidden_act', 'silu') != 'silu':
        raise ValueError(f"Qwen3 config.json has hidden_act={hf['hidden_act']!r}; only 'silu' is supported")
    rope = hf.get('rope_parameters') or {}  # HF5 nests rope_theta here; HF4 configs have it at the top level
    if rope.get('rope_type', 'default') != 'default' or hf.get('rope_scaling'):
        raise ValueError("Qwen3 config.json asks for RoPE scaling; only plain RoPE is supported")
    hidden, heads = _need(hf, 'hidden_size'), _need(hf, 'num_attention_heads')
    return dict(vocab_size=_need(hf, 'vocab_size'), hidden_size=hidden,
                intermediate_size=_need(hf, 'intermediate_size'), num_hidden_layers=_need(hf, 'num_hidden_layers'),
                num_attention_heads=heads, num_key_value_heads=hf.get('num_key_value_heads') or heads,
                head_dim=hf.get('head_dim') or hidden // heads,
                max_position_embeddings=hf.get('max_position_embeddings', 32768),
                rope_theta=float(rope.get('rope_theta', hf.get('rope_theta', 10000.0))),  # 1e4: HF's default
                rms_norm_eps=hf.get('rms_norm_eps', 1e-6), tie_word_embeddings=hf.get('tie_word_embeddings', False),
                attention_bias=hf.get('attention_bias', False), initializer_range=hf.get('initializer_range', 0.02))


def qwen3_state_dict_from_hf(hf_state_dict, config):
    state_dict = {}
    for key, tensor in hf_state_dict.items():
        if key.endswith('rotary_emb.inv_freq'):
            continue  # a buffer recomputed from rope_theta, stored by old checkpoints
        if key != 'lm_head.weight' and not key.startswith('model.'):
            key = 'model.' + key  # base-model checkpoints (Qwen3Model) lack the prefix
        state_dict[key] = tensor
    if config.tie_word_embeddings:
        state_dict = _tied_head(state_dict, 'model.embed_tokens.weight', 'Qwen3 weights')
    return state_dict


def qwen3_to_hf(model):
    """The equivalent transformers Qwen3ForCausalLM (float32, CPU, eval)."""
    from transformers import Qwen3Config as HFQwen3Config, Qwen3ForCausalLM
    c = model.config
    hf_config = HFQwen3Config(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
        max_position_embeddings=c.max_position_embeddings,
        rope_parameters={'rope_type': 'default', 'rope_theta': c.rope_theta}, rms_norm_eps=c.rms_norm_eps,
        tie_word_embeddings=c.tie_word_embeddings, attention_bias=c.attention_bias, attention_dropout=c.dropout,
        initializer_range=c.initializer_range, use_sliding_window=False, attn_implementation='sdpa')
    hf_model = Qwen3ForCausalLM(hf_config)
    hf_model.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, strict=True)
    return hf_model.eval()

# -----------------------------------------------------------------------------


class HFMapping(NamedTuple):
    model_class: type  # ours
    config_from_hf: Callable  # config.json (a dict) -> our config's fields
    state_dict_from_hf: Callable  # (HF's tensors, our config) -> our state dict
    to_hf: Callable  # our model -> the transformers model with the same weights


# config.json's model_type -> its mapping. A new family is one block above and one line here.
HF_MODELS = {'gpt2': HFMapping(GPT, gpt2_config_from_hf, gpt2_state_dict_from_hf, gpt2_to_hf),
             'qwen3': HFMapping(Qwen3, qwen3_config_from_hf, qwen3_state_dict_from_hf, qwen3_to_hf)}
