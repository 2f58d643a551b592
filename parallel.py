"""
Training past one GPU's memory, applied from outside the model (model.py stays single-device code): how train.py
spreads a model over processes, and the sharded checkpoints that go with it.

    model = parallelize(raw_model, 'fsdp', 'cuda:0', torch.bfloat16, activation_checkpoint=True)
    save_sharded('out/ckpt_sharded', model, optimizer, state)   # every process writes its shards, atomically
    load_sharded('out/ckpt_sharded', model, optimizer)          # on any number of processes, or one plain process
    model, ckpt = load_checkpoint('out/')                       # any run, .pt file or sharded folder, one process

and train.py's side of it: which process this is under torchrun and its device (processes, pick_device), the model
of a resume (load_resume), what a run saves and restores, whole or sharded (save_training, restore_training), and
whether every process's weights are finite before a save (all_finite), whether any process has a flag up
(any_process: a stop signal).

parallel='ddp': every process holds the whole model, its gradients and AdamW's state (16 bytes per parameter),
and gradients are averaged (torch's DistributedDataParallel). parallel='fsdp': PyTorch's FSDP2
(torch.distributed.fsdp.fully_shard, as torchtitan applies it) keeps 1/N of each parameter, gradient and AdamW
state on each of N processes: a block's parameters are all-gathered just before its forward (and again for its
backward) and freed after, and gradients are reduce-scattered. Activations are never sharded: each process
computes the full hidden states of its own windows, so the regularizer and the live probe see what they see on
one device. activation_checkpoint=True recomputes each block in backward instead of keeping its activations
(torch.utils.checkpoint): the same numbers, less memory.

Sharded checkpoints are torch.distributed.checkpoint (DCP) folders. DCP reshards on load, so a run saved by N
processes resumes on M, or in one plain process. DCP's own reader unpickles the folder's .metadata with plain
pickle (and its small non-tensor entries with weights_only=False), which would run code a hostile folder put
there; load_sharded reads both through SafeReader / SafePlanner below, which admit only DCP's metadata classes
and plain values, as checkpoint.torch_load does for ckpt.pt.

Everything here is torch's public API but for the names of the classes a .metadata pickle holds, which
MetadataUnpickler must admit and torch keeps private (no public alias reaches them): _StorageInfo
(torch.distributed.checkpoint.filesystem) and _MEM_FORMAT_ENCODING (torch.distributed.checkpoint.metadata), and
torch.serialization._get_layout, the function a pickled layout names (replaced here by a lookup among layouts).
Checked on torch 2.13.0 (the tests) and in torch 2.14.1's source (the same definitions), no older one;
test_private_torch_names_are_still_there in tests/test_parallel.py names the one a newer torch renames or reshapes.

Tests: python -m pytest -q tests/test_parallel.py
"""
import functools
import io
import os
import pathlib
import pickle
import shutil
import warnings

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import metadata as dcp_metadata
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.filesystem import FileSystemReader, FileSystemWriter
from torch.distributed.checkpoint.filesystem import _StorageInfo  # private: see the docstring
from torch.distributed.checkpoint.metadata import _MEM_FORMAT_ENCODING  # private: see the docstring
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict, set_state_dict)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.checkpoint import checkpoint

from checkpoint import (SHARDED_STATE, is_sharded, latest_checkpoint, load_sharded_state, save_checkpoint,
                        torch_load, training_state)
from checkpoint import load_checkpoint as load_ckpt_pt  # ckpt.pt; load_checkpoint below also reads sharded folders
from configurator import one_line


def processes():
    """This process among those torchrun started, from its RANK, LOCAL_RANK and WORLD_SIZE: (distributed, rank,
    local_rank, world_size); one plain process: (False, 0, 0, 1)."""
    if int(os.environ.get('RANK', -1)) == -1:
        return False, 0, 0, 1
    return True, int(os.environ['RANK']), int(os.environ['LOCAL_RANK']), int(os.environ['WORLD_SIZE'])


def pick_device(device, local_rank=None):
    """'auto' = cuda when available, else cpu; under torchrun (local_rank given) a CUDA device is this process's own
    GPU, cuda:LOCAL_RANK, made the current one. -> (device, 'cuda' or 'cpu', the device's name: for MFU and the
    run record)."""
    device = ('cuda' if torch.cuda.is_available() else 'cpu') if device == 'auto' else device
    if local_rank is not None and device.startswith('cuda'):
        device = f'cuda:{local_rank}'
        torch.cuda.set_device(device)
    kind = 'cuda' if device.startswith('cuda') else 'cpu'
    return device, kind, torch.cuda.get_device_name(device) if kind == 'cuda' else 'cpu'


def parallelize(model, parallel, device, dtype, activation_checkpoint=False, compile=False):
    """The module train.py calls, made from a single-device `model`. In one process: the model (compiled if asked).
    Under torchrun, parallel='ddp': DistributedDataParallel around it; parallel='fsdp': fully_shard on every block,
    then on the root (embedding, final norm, lm_head), in place: the model keeps its class methods and its
    parameter names, its parameters become DTensor shards on `device`. dtype bfloat16 under FSDP: blocks compute
    with bfloat16 copies of the weights and gradients are reduced in float32; the shards themselves, and AdamW's
    state, stay float32. compile under FSDP compiles each block, as torchtitan does."""
    sharded = parallel == 'fsdp' and dist.is_initialized()
    for block in model.blocks:
        if compile and sharded:  # the block's own computation: FSDP's hooks around it stay eager (as torchtitan)
            block.forward = torch.compile(block.forward)
        if activation_checkpoint:
            # the block's outputs (the hidden states train.py regularizes) are still returned and kept; what is
            # dropped and recomputed in backward is what the block saved inside. Non-reentrant: it replays dropout
            # with the same RNG state, and composes with FSDP's hooks, which stay on the block itself.
            block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
    if not dist.is_initialized():
        return torch.compile(model) if compile else model
    device = torch.device(device)
    if parallel == 'ddp':
        return DDP(torch.compile(model) if compile else model,
                   device_ids=[device.index] if device.type == 'cuda' else None)
    mesh = dist.init_device_mesh(device.type, (dist.get_world_size(),))
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if dtype == torch.bfloat16 else MixedPrecisionPolicy())
    for block in model.blocks:
        fully_shard(block, mesh=mesh, mp_policy=policy)  # moves the block to `device`, then keeps 1/N of it
    fully_shard(model, mesh=mesh, mp_policy=policy)
    return model


def local(tensor):
    """What this process holds of a tensor: its shard of a DTensor, else the tensor."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


@torch.no_grad()
def copy_full_(param, full):
    """param.copy_(full), where full is the whole tensor (the same on every process) and param may be a shard."""
    full = full.to(local(param).device)
    if isinstance(param, DTensor):  # each process keeps its own slice; no communication (src_data_rank=None)
        full = distribute_tensor(full, param.device_mesh, param.placements, src_data_rank=None)
    param.copy_(full)


def gather_weights(model):
    """The model's full state dict, on the CPU of rank 0 (an empty dict elsewhere); every process must call it.
    For a model that is not sharded: its state dict."""
    if not any(isinstance(p, DTensor) for p in model.parameters()):
        return model.state_dict()
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def shard_optimizer_state(model, optimizer, full_state):
    """Load an optimizer state_dict() saved by one process (ckpt.pt: states keyed by position, full tensors) into
    the optimizer of a sharded model: each process keeps its slice. DCP's loader wants parameter names for keys;
    position i is the i-th parameter of the optimizer's groups, in order, as torch numbers them."""
    names = {param: name for name, param in model.named_parameters()}
    order = [names[p] for group in optimizer.param_groups for p in group['params']]
    if len(order) != sum(len(g['params']) for g in full_state['param_groups']):
        raise ValueError("the checkpoint's optimizer has another number of parameters than this model's")
    by_name = {'state': {order[i]: s for i, s in full_state['state'].items()},
               'param_groups': [dict(g, params=[order[i] for i in g['params']]) for g in full_state['param_groups']]}
    set_optimizer_state_dict(model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))


def all_finite(model):
    """Whether every weight is finite, on every process: each checks what it holds (its shards under FSDP), and they
    all get the same answer (any_process), so that they stop together. Every process must call it (under torchrun)."""
    here = all(torch.isfinite(local(p)).all() for p in model.parameters())
    return not any_process(not here, local(next(model.parameters())).device)


def any_process(flag, device):
    """Whether flag is true on any process (all of them get the same answer, so that they act together, e.g. stop
    on a signal that reached one of them); the flag itself in one plain process."""
    flag = torch.tensor(int(flag), device=device)
    if dist.is_initialized():
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def save_training(path, model, optimizer, sharded, scaler, step, config, data_meta, compute):
    """train.py's saves (checkpoint.training_state: the model, optimizer, scaler, step, config, data and training
    time); every process calls it. sharded=True: the folder `path` of this process's shards of the model and
    optimizer (save_sharded). Else the ckpt.pt file `path`, written by rank 0 with the full weights, and with the
    optimizer's state only when the model is not sharded: an FSDP run's full-weights files (its snapshots, its final
    ckpt.pt) hold the weights only."""
    if sharded:
        return save_sharded(path, model, optimizer, training_state(model, optimizer, scaler, step, config, data_meta,
                                                                   compute))
    weights = gather_weights(model)  # the model's own state dict when it is not sharded
    if not dist.is_initialized() or dist.get_rank() == 0:
        whole = not any(isinstance(p, DTensor) for p in model.parameters())
        save_checkpoint(training_state(model, optimizer if whole else None, scaler, step, config, data_meta, compute,
                                       weights=weights), path)


def restore_training(path, ckpt, model, optimizer):
    """A resume's optimizer state into this run's (already parallelized) model and optimizer: from an FSDP run's
    sharded folder `path`, the model's and optimizer's tensors resharded to this run's processes (load_sharded); from
    a one-process ckpt.pt (ckpt, its weights already in the model), the optimizer's state, sliced to this process's
    shards when the model is sharded."""
    if os.path.isdir(path):
        load_sharded(path, model, optimizer)
    elif any(isinstance(p, DTensor) for p in model.parameters()):
        shard_optimizer_state(model, optimizer, ckpt['optimizer'])
    else:
        optimizer.load_state_dict(ckpt['optimizer'])


# -----------------------------------------------------------------------------
# sharded checkpoints: a folder of DCP files (each process its shards) and train_state.pt (the rest, from rank 0)


def save_sharded(path, model, optimizer, state):
    """Every process: write the model's and optimizer's tensors (each process its shards) into the folder `path`,
    with `state` (checkpoint.training_state: step, config, RNG, ...; its 'model' and 'optimizer' are left out, as
    DCP holds them) in path/train_state.pt. Atomic: everything goes to path.tmp; once complete, rank 0 moves the
    previous folder to path.old, renames path.tmp to path, and deletes path.old. A crash at any point leaves a
    complete checkpoint (run_dir.claim_out_dir puts path.old back if the crash came between the two renames).
    A failure on any process raises OSError on every process; the previous checkpoint is then intact."""
    tmp, old = path + '.tmp', path + '.old'
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    if rank0 and os.path.exists(tmp):
        shutil.rmtree(tmp)  # what a failed save left
    _barrier()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*assuming the intent is to')  # one process: no collectives
            dcp.save({'model': model_state, 'optimizer': optimizer_state}, storage_writer=FileSystemWriter(tmp))
    except CheckpointException as e:  # a BaseException, holding each failed process's exception
        raise OSError(_first_failure(e)) from None
    if rank0:
        rest = {k: v for k, v in state.items() if k not in ('model', 'optimizer')}
        rest['sharded'] = {'processes': dist.get_world_size() if dist.is_initialized() else 1}
        save_checkpoint(rest, os.path.join(tmp, SHARDED_STATE))
        if os.path.isdir(path):
            os.rename(path, old)
        os.rename(tmp, path)
        if os.path.isdir(old):
            shutil.rmtree(old)
    _barrier()


def load_sharded(path, model, optimizer=None, alone=False):
    """Fill model (and optimizer) from a folder save_sharded wrote, whatever the number of processes that wrote it:
    under FSDP each process reads the slices of its shards, in one plain process (or under DDP) each reads whole
    tensors. Only tensors and plain values are read (SafeReader, SafePlanner): a folder holding anything else is a
    one-line ValueError, and what it holds never runs. Every process must call it, unless alone=True: this process
    reads it by itself, for its own plain model, whatever the others do."""
    reader = SafeReader(path)
    reader.read_metadata()  # refused here, in one line, rather than inside DCP's collective plan
    if optimizer is None:
        state = {'model': get_model_state_dict(model)}
    else:
        model_state, optimizer_state = get_state_dict(model, optimizer)  # builds AdamW's (empty) state to fill
        state = {'model': model_state, 'optimizer': optimizer_state}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='.*assuming the intent is to')
            dcp.load(state, storage_reader=reader, planner=SafePlanner(), no_dist=alone)
    except CheckpointException as e:
        raise ValueError(f"could not load the sharded checkpoint {path}: {_first_failure(e)}") from None
    if optimizer is None:
        set_model_state_dict(model, state['model'])
    else:
        set_state_dict(model, optimizer, model_state_dict=state['model'], optim_state_dict=state['optimizer'])


def load_resume(path, trust_checkpoint=False):
    """(model, ckpt) of the checkpoint a run resumes from (checkpoint.latest_checkpoint): a ckpt.pt's model with
    its weights, or the model of an FSDP run's sharded folder, whose tensors restore_training reads once the model
    is parallelized, each process its own shards."""
    return load_sharded_state(path) if is_sharded(path) else load_ckpt_pt(path, trust_checkpoint=trust_checkpoint)


def load_checkpoint(path, device='cpu', trust_checkpoint=False):
    """checkpoint.load_checkpoint, and also an FSDP run's sharded folder, read whole by this one process: what the
    scripts that read a run call. (model, ckpt) from a train.py out_dir (its ckpt.pt, or ckpt_sharded/ where that
    is later: an FSDP run stopped before its end), a .pt file, or a sharded folder; float32, in eval mode.
    Here, not in checkpoint.py: this file imports checkpoint.py, so that one cannot import this one."""
    if os.path.isdir(path) and not is_sharded(path):
        path = latest_checkpoint(path, training=False)
    if not is_sharded(path):
        return load_ckpt_pt(path, device, trust_checkpoint)
    model, state = load_sharded_state(path, device)
    load_sharded(path, model, alone=True)
    return model.eval(), state


# What a DCP .metadata file holds, and all the unpickler admits: DCP's dataclasses, torch.Size, pathlib paths
# (FileSystemWriter records the folder as its checkpoint_id), torch's dtypes (pickled as torch.float32, ...) and
# layouts (pickled as torch.serialization._get_layout('torch.strided'): here a lookup among layouts only).
METADATA_CLASSES = {(c.__module__, c.__qualname__): c for c in (
    dcp_metadata.Metadata, dcp_metadata.MetadataIndex, dcp_metadata.TensorStorageMetadata,
    dcp_metadata.BytesStorageMetadata, dcp_metadata.ChunkStorageMetadata, dcp_metadata.TensorProperties,
    dcp_metadata.StorageMeta, _MEM_FORMAT_ENCODING, _StorageInfo, torch.Size, pathlib.PosixPath)}
LAYOUTS = {str(v): v for v in vars(torch).values() if isinstance(v, torch.layout)}


class MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in METADATA_CLASSES:
            return METADATA_CLASSES[module, name]
        if module == 'torch' and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (module, name) == ('torch.serialization', '_get_layout'):
            return LAYOUTS.__getitem__
        raise pickle.UnpicklingError(f"GLOBAL {module}.{name}")


class SafeReader(FileSystemReader):
    """DCP's FileSystemReader, reading .metadata with MetadataUnpickler instead of pickle.load, and refusing
    storage entries that point outside the folder. A refusal is a one-line ValueError."""

    def read_metadata(self, *args, **kwargs):
        path = os.path.join(self.path, '.metadata')
        if not os.path.isfile(path):
            raise ValueError(f"{self.path} is not a complete sharded checkpoint: no .metadata")
        try:
            with open(path, 'rb') as f:
                metadata = MetadataUnpickler(f).load()
        except pickle.UnpicklingError as e:
            if str(e).startswith('GLOBAL'):  # MetadataUnpickler's refusal
                raise ValueError(f"{path} holds more than DCP's metadata ({e}), so it is not loaded: unpickling it "
                                 f"could run code") from None
            raise ValueError(f"{path} is damaged: {one_line(e)}") from None
        except Exception as e:
            raise ValueError(f"{path} is damaged: {one_line(e)}") from None
        if not isinstance(metadata, dcp_metadata.Metadata) or not isinstance(metadata.storage_data, dict):
            raise ValueError(f"{path} is not DCP metadata")
        for info in metadata.storage_data.values():
            name = getattr(info, 'relative_path', None)
            if not isinstance(info, _StorageInfo) or not isinstance(name, str) or os.path.basename(name) != name \
                    or name in ('', '.', '..'):
                raise ValueError(f"{path} names a data file outside {self.path}: {name!r}")
        if metadata.storage_meta is None:
            metadata.storage_meta = dcp_metadata.StorageMeta()
        metadata.storage_meta.load_id = self.load_id  # as FileSystemReader.read_metadata does
        return metadata


class SafePlanner(DefaultLoadPlanner):
    """DCP's default load planner, unpickling the non-tensor entries (an optimizer's lr, betas, parameter names)
    with weights_only=True: plain values only."""

    def load_bytes(self, read_item, value):
        entry = torch_load(value, name=f"its entry {read_item.dest_index.fqn}")
        # DCP's own load_bytes puts an entry where it belongs in the nested state dict, but unpickles it in full:
        # it gets what weights_only admitted, written again by torch.save (a few small values per optimizer group)
        admitted = io.BytesIO()
        torch.save(entry, admitted)
        admitted.seek(0)
        super().load_bytes(read_item, admitted)


def _barrier():
    if dist.is_initialized():
        dist.barrier()


def _first_failure(e):
    """One line from DCP's CheckpointException: the first failed process's exception."""
    rank = min(e.failures)
    return f"{one_line(e.failures[rank][0])} (process {rank})"
