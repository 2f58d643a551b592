"""
The one training loop: pre-training from scratch, mid-training a Hugging Face model, with the dispersion loss or
any alternative of the paper, and the baselines it compares with. CPU, one GPU, or many through torchrun.

    python train.py config/demo.py                                       # CPU, offline, minutes
    python train.py config/midtrain_gpt2_disp.py --batch_size=8          # one GPU
    torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp.py
    torchrun --standalone --nproc_per_node=8 train.py config/midtrain_qwen3_8b_disp.py  # FSDP2 (parallel.py)
    python train.py config/demo.py --init_from=resume                    # continue exactly

Each optimizer step trains on a global batch of batch_size * gradient_accumulation_steps windows whose offsets
are a function of (seed, step) alone: N processes split that batch between them, so they train exactly what one
process with N times the accumulation trains, and a resumed run sees the same data.
Outputs in out_dir: ckpt.pt (atomic; at every eval, so at the end, and on SIGTERM/SIGINT), ckpt_{step:06d}.pt
snapshots when asked, metrics.jsonl (one JSON object per logged step), training.png (drawn from it at every eval:
losses, lr, grad norm, the per-layer mean cosine over steps), run.json (config, versions, the model trained); at
the end condensation.json/.csv, heatmap.png, trend.png (measure.py's measurement), eval.json if eval_tasks is set.
With parallel='fsdp' under torchrun, the checkpoint of every eval and signal is the folder ckpt_sharded/ (each
process writes its shards; resumable on any number of processes, or in one plain process), and ckpt.pt (written at
the end) and the snapshots hold the full weights only, for measure.py, eval.py, sample.py and HF export.
A run holds out_dir/train.lock while it lasts (a second train.py there is refused), never replaces another run's
checkpoints unless told to (overwrite), and on resume keeps the model the checkpoint holds: a model key given that
contradicts it is an error (run_dir.check_resume says which keys; run.json records a resume and its changes).
"""

import datetime
import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext

from configurator import Annotated, Choice, Device, Range  # the allowed values of the keys below

# -----------------------------------------------------------------------------
# defaults (every name here is a config key: config/*.py files and --key=value override them; the annotations say
# what each allows, checked before anything runs: configurator.py)
# I/O
out_dir = 'out'
init_from = 'scratch'        # 'scratch' | 'resume' | a hub id ('gpt2', 'Qwen/Qwen3-0.6B') | a local HF dir
overwrite = False            # a new run may replace the checkpoints of another run in out_dir (deleted at start)
trust_checkpoint = False     # load ckpt.pt files (resume, teacher) with full pickle, which can run code: yours only
dataset = 'pydocs'           # a folder under data/ or a path holding train.bin, val.bin, meta.json
eval_interval: Range(min=1) = 200  # steps between evaluations (val loss + condensation probe + ckpt.pt)
eval_iters: Range(min=1) = 20  # val batches per evaluation (fixed windows, the same at every eval)
eval_measures: str | list = 'mean_cossim'  # the eval probe's geometry measures (measure.py's --measures: 'all' or a
                             # comma list, e.g. 'isoscore,effective_rank'), logged under their names; opt-in, as the
                             # float64 Gram and eigenvalues cost up to x2.4 the probe (docs/study.md)
log_interval: Range(min=1) = 10  # steps between log lines / metrics.jsonl records
snapshot_interval: Range(min=0) = 0  # keep ckpt_{step:06d}.pt every this many steps (0 = off)
condensation_samples: Range(min=1) = 100  # val windows measured at the end (condensation.json, heatmap.png)
eval_tasks: str | list = ''  # lm-eval at the end: comma-separated tasks, 'paper' = the ten, '' = none
lm_eval_interval: Range(min=0) = 0  # also run eval_tasks every this many steps (0 = at the end only; official:
                             # max_steps//5+1)
lm_eval_at_start = False     # also evaluate the starting model at step 0 (official --eval_at_begin: Table 2's base row)
eval_limit: Annotated[int | float | None, Range(min=0)] = None  # lm-eval documents per task (a fraction if < 1,
                             # 0 = all); None = the model family's (GPT-2 500, Qwen3 200)
eval_include_path = ''       # a folder of extra lm-eval task YAMLs (custom or offline tasks)
wandb_log = False             # log to Weights & Biases too (pip install wandb); metrics.jsonl is written either way
wandb_project = 'dispersion'
wandb_run_name = ''
wandb_run_id = ''            # '' = a new id, kept in the checkpoint: a resumed run continues the same wandb run
dry_run = False              # resolve and print the config, then exit without touching data or disk
# data and batch
batch_size: Range(min=1) = 8  # windows per micro-step per process
block_size: Range(min=1) = 256  # tokens per window
gradient_accumulation_steps: Range(min=1) = 1  # micro-steps per optimizer step, summed over all processes
grad_accum_reduction: Choice('mean', 'sum') = 'mean'  # each optimizer step's gradient: 'mean' of its micro-batch
                             # gradients | 'sum' of them (the official HF Trainer runs: the clip at 1.0 then binds
                             # almost always)
# model, for init_from='scratch'
arch: Choice('gpt', 'qwen3') = 'gpt'  # 'gpt' (GPT-2 family) | 'qwen3'
n_layer: Range(min=1) = 6
n_head: Range(min=1) = 6
n_embd: Range(min=1) = 384  # gpt: a multiple of n_head
mlp_hidden: Annotated[int | None, Range(min=1)] = None  # MLP width; None = 4*n_embd (gpt) or 3*n_embd (qwen3, as
                             # Qwen3-0.6B)
n_kv_head: Annotated[int | None, Range(min=1)] = None  # qwen3: key/value heads for grouped-query attention (a
                             # divisor of n_head); None = n_head
head_dim: Annotated[int | None, Range(min=1)] = None  # qwen3: None = n_embd // n_head
rope_theta: Range(above=0) = 1e6  # qwen3
bias = True                  # gpt: biases in Linear and LayerNorm
dropout: Range(min=0, below=1) = 0.0  # HF GPT-2 trains with 0.1; applies to hub/HF starts too
# optimizer and schedule
max_iters: Range(min=1) = 1000  # optimizer steps; ignored when max_tokens > 0
max_tokens: Range(min=0) = 0  # token budget (the paper states these, e.g. 200M); sets max_iters
learning_rate: Range(min=0) = 6e-4
min_lr: Range(min=0) = 6e-5  # cosine decays to this
warmup_iters: Range(min=0) = 100
warmup_frac: Range(min=0, max=1) = 0.0  # > 0: warmup_iters = ceil(warmup_frac * max_iters) (official runs: 0.2)
lr_decay_iters: Annotated[int | None, Range(min=0)] = None  # None = max_iters
weight_decay: Range(min=0) = 0.1  # on matrices and embeddings, not on biases and norms
beta1: Range(min=0, below=1) = 0.9  # AdamW's betas
beta2: Range(min=0, below=1) = 0.95
grad_clip: Range(min=0) = 1.0  # 0 = off
# regularizers (losses.py): L = L_train + reg_coeff * L_reg
reg: Choice('none', names_in='losses.REGULARIZERS') = 'none'  # or dispersion, decorrelation, l2_repel, ...
reg_coeff = 0.1              # lambda (paper Table 4 best: 0.1)
reg_tau: Range(above=0) = 1.0  # temperature tau, for the losses that have one
reg_loc: Annotated[str | list, Choice(names_in='losses.LOCATIONS')] = 'all'  # all | early_half | late_half | last
                             # | a list of hidden-state indices
reg_max_tokens: Annotated[int | None, Range(min=1)] = None  # subsample this many positions per sequence (official:
                             # 256); None = all
reg_clamp: Range(above=0, below=1) = 0.1  # cosines clamped to [-1+c, 1-c] (dispersion, orthogonalization); official
                             # GPT-2 runs 0.1, Qwen3 runs 0.25
reg_impl: Choice(names_in='losses_tiled.IMPLS') = 'auto'  # 'reference' (losses.py as written) | 'tiled'
                             # (losses_tiled.py) | 'auto': tiled from losses_tiled.AUTO_MIN_TOKENS tokens per
                             # sequence up, if it still equals losses.py
# baselines the paper compares with
noisy_embedding_alpha: Range(min=0) = 0.0  # NEFTune alpha: U(-a, a) noise, a = alpha / sqrt(T * d); 0 = off
active_forgetting_every: Range(min=0) = 0  # re-initialise the token embedding every K steps; 0 = off
af_emb_lr: Range(min=0) = 5e-5  # active forgetting: peak lr of the embedding's own cyclic schedule
af_emb_warmup_frac: Range(min=0, max=1) = 0.08  # active forgetting: warmup fraction of each embedding lr cycle
teacher = ''                 # distillation: hub id, HF dir or train.py out_dir of a frozen teacher
kd_coeff = 1.0               # L = L_train + kd_coeff * T^2 KL(teacher || student)
kd_temperature: Range(above=0) = 2.0
# system
device: Device() = 'auto'    # 'auto' = cuda if available, else cpu; or cpu, cuda, cuda:N, mps
dtype: Choice('auto', 'float32', 'bfloat16', 'float16') = 'auto'  # 'auto' = bfloat16 on CUDA when supported,
                             # else float32
compile: bool | None = None  # torch.compile the model (and, on CUDA, the regularizer's tiles); None = on for CUDA
parallel: Choice('ddp', 'fsdp') = 'ddp'  # under torchrun: 'ddp' (each GPU holds everything) | 'fsdp' (FSDP2 shards
                             # it; parallel.py)
activation_checkpoint = False  # recompute each block in backward: the same losses, far less activation memory
seed: Range(min=0) = 1337    # numpy's generators take no negative seed
# -----------------------------------------------------------------------------
from configurator import configure, die, one_line  # noqa: E402
given_keys = set()  # the keys a config file or the command line set, whatever their value (resume checks them)
config = configure(globals(), given=given_keys)

# heavy imports after configure: a config error is reported at once
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import losses  # noqa: E402
import losses_tiled  # noqa: E402  (the regularizer's fast path, and which of the two runs)
from baselines import add_neftune, embedding_lr, forget_embedding, load_teacher  # noqa: E402
from checkpoint import SHARDED, latest_checkpoint, restore_rng  # noqa: E402
from condensation import parse_measures  # noqa: E402
from data import batch_windows, dataset_dir, load_meta, load_tokens  # noqa: E402
from hf_io import from_pretrained  # noqa: E402
from model import build_model  # noqa: E402
from parallel import (all_finite, any_process, load_checkpoint, load_resume, local, parallelize,  # noqa: E402
                      pick_device, processes, restore_training, save_training)
from run_dir import RunLog, check_resume, claim_out_dir, key_problem, model_keys  # noqa: E402

# ----------------------------------------------------------------------------- processes and devices
distributed, rank, local_rank, world_size = processes()  # torchrun's RANK, LOCAL_RANK, WORLD_SIZE
problem = key_problem(config, world_size, distributed)  # the constraints between keys, before any read or write
if problem:
    die(problem, 2)
probe_measures = parse_measures(eval_measures)  # the eval probe's measures, mean_cossim first
if sum([reg != 'none', noisy_embedding_alpha > 0, active_forgetting_every > 0]) > 1:
    print("note: several counter-condensation methods are on at once (the paper runs them one at a time)")
master = rank == 0
fsdp = parallel == 'fsdp' and distributed  # one plain process has nothing to shard
device, device_type, device_name = pick_device(device, local_rank if distributed else None)  # cuda:LOCAL_RANK
if dtype == 'auto':
    dtype = 'bfloat16' if device_type == 'cuda' and torch.cuda.is_bf16_supported() else 'float32'
compile = device_type == 'cuda' if compile is None else compile
micro_steps = gradient_accumulation_steps // world_size  # this process's micro-steps per step (a divisor: key_problem)
global_batch = batch_size * gradient_accumulation_steps  # windows per optimizer step
tokens_per_step = global_batch * block_size
if max_tokens > 0:
    max_iters = math.ceil(max_tokens / tokens_per_step)
lr_decay_iters = max_iters if lr_decay_iters is None else lr_decay_iters
if warmup_frac > 0:
    warmup_iters = math.ceil(warmup_frac * max_iters)
config.update(device=device, dtype=dtype, compile=compile, max_iters=max_iters, lr_decay_iters=lr_decay_iters,
              warmup_iters=warmup_iters)
if master:
    print(f"tokens per step: {tokens_per_step:,} ({global_batch} windows x {block_size} tokens) | "
          f"{max_iters} steps = {max_iters * tokens_per_step:,} tokens | {world_size} process(es), "
          f"{micro_steps} micro-step(s) each" + (" | FSDP" if fsdp else ""))
    if parallel == 'fsdp' and not distributed:
        print("note: parallel='fsdp' in one process: nothing to shard, training as one plain process")
if dry_run:
    print(json.dumps(config, indent=2))
    sys.exit(0)

if distributed:  # lm-eval during training runs on the master alone: the others wait for it at the next collective
    lm_eval_waits = eval_tasks and (lm_eval_interval > 0 or lm_eval_at_start)
    dist.init_process_group(backend='nccl' if device_type == 'cuda' else 'gloo',
                            timeout=datetime.timedelta(hours=2) if lm_eval_waits else None)
torch.manual_seed(seed)  # every process builds the same initial model (FSDP shards it as it is: nothing is broadcast)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
autocast = nullcontext() if ptdtype == torch.float32 else torch.autocast(device_type, dtype=ptdtype)

# ----------------------------------------------------------------------------- data
try:
    data_dir = dataset_dir(dataset)
    data_meta = load_meta(data_dir)
    n_train, n_val = len(load_tokens(data_dir, 'train')), len(load_tokens(data_dir, 'val'))
except (FileNotFoundError, ValueError) as e:
    die(str(e))
if min(n_train, n_val) <= block_size + 1:
    die(f"dataset '{dataset}' has {n_train} train / {n_val} val tokens: too few for block_size={block_size}")


def get_batch(split, index, first, count):
    """Windows first..first+count-1 of the global batch keyed by (split, index), as (x, y) on device. The offsets
    depend on (seed, split, index) alone (data.batch_windows): not on the process count, not on what was read
    before, so N processes train what one does and a resumed run sees the same data."""
    try:
        windows = torch.from_numpy(batch_windows(data_dir, split, seed, index, global_batch, block_size, first, count,
                                                 data_meta['vocab_size']))
    except ValueError as e:
        die(str(e))
    x, y = windows[:, :-1], windows[:, 1:]
    if device_type == 'cuda':
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


# ----------------------------------------------------------------------------- out_dir and model
out_dir_lock = None  # the master's lock on out_dir, held by this reference until the process ends
if master:
    try:
        out_dir_lock = claim_out_dir(out_dir, resume=init_from == 'resume', overwrite=overwrite)
    except (OSError, ValueError) as e:
        die(str(e))
if distributed:
    dist.barrier()  # the others read out_dir once the master has claimed it (and tidied what a crash left)
step, resume_ckpt, resume_changes, resume_from = 0, None, {}, None
try:
    if init_from == 'scratch':
        model = build_model(arch, data_meta['vocab_size'], block_size, n_layer, n_head, n_embd, mlp_hidden=mlp_hidden,
                            n_kv_head=n_kv_head, head_dim=head_dim, rope_theta=rope_theta, bias=bias, dropout=dropout)
    elif init_from == 'resume':
        resume_from = latest_checkpoint(out_dir)  # ckpt.pt, or an FSDP run's ckpt_sharded/: the later one
        model, resume_ckpt = load_resume(resume_from, trust_checkpoint)  # sharded: filled by restore_training below
        resume_changes = check_resume(resume_ckpt, model, config, given_keys, data_meta)
        step = resume_ckpt['step']
    else:
        model = from_pretrained(init_from, dropout=dropout)
except (FileNotFoundError, ValueError) as e:
    die(str(e))
torch.manual_seed(seed + rank)  # dropout and noise differ per rank; the data does not (see get_batch)
# the model actually trained, in the shape keys (a hub start or a checkpoint decides them, not the scratch defaults):
# run.json and every checkpoint record its real shape
config.update(model_keys(model))
if data_meta['vocab_size'] > model.config.vocab_size:
    die(f"the dataset's token ids reach {data_meta['vocab_size'] - 1} (tokenizer '{data_meta['tokenizer']}', "
        f"vocab_size {data_meta['vocab_size']} in its meta.json), beyond the model's vocabulary of "
        f"{model.config.vocab_size} ids (0-{model.config.vocab_size - 1}): the model was not made for this tokenizer")
if block_size > model.max_seq_len:
    die(f"block_size={block_size} is beyond the model's {model.max_seq_len} positions")
num_hidden = len(model.blocks) + 1  # the embedding, then one hidden state per block
try:  # index lists are checked against the real model's depth
    reg_layers = losses.select_layers(num_hidden, reg_loc) if reg != 'none' else []
except ValueError as e:
    die(f"reg_loc: {e}", 2)
if not fsdp:
    model.to(device)  # fully_shard moves each block itself: the whole model never sits on one GPU
# raw_model: the model itself (no wrapper, sharded in place under FSDP): saved, exported and measured (no prefix
# stripping anywhere). model: what the loop calls (compiled and/or DDP-wrapped). Applied before the optimizer is
# made, as FSDP replaces the parameters with their shards.
raw_model = model
model = parallelize(raw_model, parallel, device, ptdtype, activation_checkpoint, compile)

# ----------------------------------------------------------------------------- the baselines the paper compares with
# (baselines.py) NEFTune's noise on the token embeddings, in training only (a forward hook)
if noisy_embedding_alpha > 0:
    add_neftune(raw_model, noisy_embedding_alpha)
# active forgetting re-draws the token embedding every K steps, with its own lr: an optimizer group of its own
embedding = raw_model.get_input_embeddings().weight
# knowledge distillation (Figure 5's baseline): a frozen teacher's logits, KL in train_loss below
teacher_model = None
if teacher:
    try:
        teacher_model = load_teacher(teacher, raw_model.config.vocab_size, data_meta['tokenizer'], trust_checkpoint)
    except (FileNotFoundError, ValueError) as e:
        die(f"teacher: {e}")
    teacher_model.to(device)

# ----------------------------------------------------------------------------- optimizer and schedule
optimizer = raw_model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type,
                                           own_group=embedding if active_forgetting_every > 0 else None)
scaler = torch.amp.GradScaler(device_type, enabled=ptdtype == torch.float16)
if resume_ckpt is not None:
    try:
        restore_training(resume_from, resume_ckpt, raw_model, optimizer)  # resharded to this run's processes
        if 'scaler' in resume_ckpt:
            scaler.load_state_dict(resume_ckpt['scaler'])
        restore_rng(resume_ckpt)
    except Exception as e:  # a checkpoint whose optimizer or RNG state does not fit this model and run
        die(f"cannot resume from {resume_from}: {one_line(e)}")


def get_lr(it):
    """The lr of the update that has taken `it` updates before it: transformers' get_cosine_schedule_with_warmup,
    which the official runs use (so the very first update has lr 0), then a cosine from learning_rate down to
    min_lr at lr_decay_iters, and min_lr after. With min_lr = 0 and lr_decay_iters = max_iters it is that
    schedule exactly (tests/test_train.py compares them step by step)."""
    if it < warmup_iters:
        return learning_rate * (it / warmup_iters)
    if it >= lr_decay_iters:
        return min_lr
    progress = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


# the regularizer's tiles are fused by torch.compile where that pays (CUDA) and the model is compiled too
fuse_reg = compile and device_type == 'cuda'
# the definition (losses.py) or its fast path (losses_tiled.py): 'auto' takes the fast path where it pays, by the
# tokens per sequence the loss sees, and only if it still equals the definition (checked here, a few ms)
reg_impl_run, reg_impl_note = ('reference', None) if reg == 'none' else losses_tiled.choose_impl(
    reg, reg_impl, min(block_size, reg_max_tokens or block_size), device_type, tau=reg_tau, clamp=reg_clamp)
if reg_impl_note and master:
    print(reg_impl_note)


def train_loss(x, y, micro_id):
    """Next-token loss plus the active regularizer / distillation. micro_id: this micro-step's global index
    (step * gradient_accumulation_steps + its place in the step), which seeds the token subsampling so that it
    does not depend on the process count. Returns (total, ce, reg, kd); reg and kd are None when off."""
    with autocast:
        out = model(x, y, return_hidden=reg != 'none')
    logits, ce = out[0], out[1]
    total, reg_value, kd_value = ce, None, None
    if reg != 'none':
        gen = torch.Generator(device=x.device).manual_seed(seed * 1_000_003 + micro_id)
        reg_value = losses_tiled.hidden_reg_loss(out[2], reg, loc=reg_layers, max_tokens=reg_max_tokens,
                                                 generator=gen, impl=reg_impl_run, fuse=fuse_reg, tau=reg_tau,
                                                 clamp=reg_clamp)
        total = total + reg_coeff * reg_value
    if teacher_model is not None:
        with torch.no_grad(), autocast:
            teacher_logits = teacher_model(x)[0]
        kd_value = losses.distillation(logits, teacher_logits, kd_temperature)
        total = total + kd_coeff * kd_value
    return total, ce, reg_value, kd_value


@torch.no_grad()
def evaluate():
    """Val loss and the live condensation probe (the measures of eval_measures, mean_cossim first: per window, as
    measure.py defines them) on fixed val windows, split across processes and summed. -> (val loss, {measure: its
    mean over the windows, per hidden state})."""
    from condensation import geometry
    model.eval()
    sums = torch.zeros(2 + num_hidden * len(probe_measures), device=device, dtype=torch.float64)  # loss, windows, ...
    rounds = math.ceil(eval_iters / world_size)  # FSDP: every process runs as many forwards (each gathers weights)
    for k in range(rank, rounds * world_size, world_size):
        x, y = get_batch('val', k % eval_iters, 0, batch_size)
        with autocast:
            _, loss, hidden = raw_model(x, y, return_hidden=True)
        weight = x.size(0) if k < eval_iters else 0  # one past eval_iters counts for nothing
        values = geometry(hidden, probe_measures)  # {measure: [num_hidden, B]}: summed over this batch's windows
        sums[:2] += torch.tensor([loss.item() * weight, weight], device=device, dtype=torch.float64)
        sums[2:] += torch.cat([values[m].sum(1) for m in probe_measures]).to(device) * (weight > 0)
    if distributed:
        dist.all_reduce(sums)
    model.train()
    means = (sums[2:] / sums[1]).tolist()
    return (sums[0] / sums[1]).item(), {m: means[i * num_hidden:(i + 1) * num_hidden]
                                        for i, m in enumerate(probe_measures)}


# ----------------------------------------------------------------------------- signals, and what the run records
stop_signal = []
for sig in (signal.SIGTERM, signal.SIGINT):  # clusters preempt with SIGTERM: save, then leave
    signal.signal(sig, lambda signum, frame: stop_signal.append(signum))
# the master's records: run.json (versions and any resume's changes), metrics.jsonl (on resume, what a crashed run
# logged past its checkpoint goes), wandb (a resumed run continues the checkpoint's), console, training.png; and on
# every process the training clock (log.compute(): the time the paper's Table 2 reports, lm-eval left out)
log = RunLog(out_dir, config, data_meta, raw_model, world_size, device_name, resume_ckpt, resume_changes,
             active=master)
del resume_ckpt
if master:
    print(f"model: {raw_model.arch}, {raw_model.num_params() / 1e6:.2f}M parameters | reg={reg} on hidden states "
          f"{reg_layers} | start at step {step}")


# ----------------------------------------------------------------------------- divergence checks, lm-eval, saves
def stop_if_loss_diverged(value):
    """A non-finite loss stops the run, checked where the loop syncs anyway: the train loss (all-reduced) at log
    time, the val loss at eval time, so every rank sees the same value and stops; nothing is saved."""
    if not math.isfinite(value):
        die(f"loss non-finite at step {step}; stopping without saving (the last good checkpoint stays in {out_dir})")


def lm_eval_now():
    """lm-eval of eval_tasks on the model as it is now (the master only; exact float32, eval.py's evaluate), logged
    (run_dir.RunLog.lm_eval) -> lm-eval's results dict. Its time is kept out of the training time."""
    from eval import evaluate as lm_eval
    with log.not_training():
        res = lm_eval(raw_model, data_meta['tokenizer'], eval_tasks, limit=eval_limit, device=device, seed=seed,
                      include_path=eval_include_path)
    log.lm_eval(step, res['results'])
    return res


def save(name, full_weights=False):
    """ckpt.pt or a snapshot ckpt_{step:06d}.pt; every process calls it. Under FSDP the training state goes to
    ckpt_sharded/ instead (each process writes its shards), and full_weights=True writes `name` with the full
    weights only, gathered on the master (the snapshots, and ckpt.pt at the end of the run). Non-finite weights stop
    the run first, on every process, so that no bad checkpoint is written. Returns the training time it recorded
    (eval.json carries the final checkpoint's)."""
    if not all_finite(raw_model):
        die(f"weights non-finite at step {step}; stopping without saving (the last good checkpoint stays in "
            f"{out_dir})")
    sharded = fsdp and not full_weights
    path, compute = os.path.join(out_dir, SHARDED if sharded else name), log.compute()
    try:
        save_training(path, raw_model, optimizer, sharded, scaler, step, config, data_meta, compute)
    except OSError as e:  # a full disk, an out_dir gone or made read-only: the previous checkpoint is intact
        die(f"could not save {path} at step {step}: {one_line(e)} (the checkpoint there before, if any, is intact)")
    return compute


# ----------------------------------------------------------------------------- training loop
model.train()
final_compute = None  # the training time the last ckpt.pt records
if eval_tasks and lm_eval_at_start and step == 0 and master:  # the starting model: Table 2's base row, per seed
    lm_eval_now()
if snapshot_interval > 0 and step == 0:  # the starting model too (the official runs keep it): Figure 7's first column
    save('ckpt_000000.pt', full_weights=True)
t_start, step_start = log.t_start, step
t_last, step_last, last_train_loss = t_start, step, float('nan')  # as of the last log line
while step < max_iters:
    lr = get_lr(step)
    emb_lr = embedding_lr(step, max_iters, active_forgetting_every, af_emb_lr, af_emb_warmup_frac) \
        if active_forgetting_every > 0 else None
    for group in optimizer.param_groups:
        group['lr'] = emb_lr if group.get('own_group') else lr
    sums = torch.zeros(3, device=device)  # ce, reg, kd summed over this process's micro-steps
    for micro in range(micro_steps):
        place = rank * micro_steps + micro  # this micro-step's place among the step's gradient_accumulation_steps
        x, y = get_batch('train', step, place * batch_size, batch_size)
        if distributed and not fsdp:  # DDP syncs gradients on the last micro-step only (no_sync(), without the
            model.require_backward_grad_sync = micro == micro_steps - 1  # context); FSDP reduce-scatters each one
        total, ce, reg_value, kd_value = train_loss(x, y, step * gradient_accumulation_steps + place)
        sums[0] += ce.detach()
        if reg_value is not None:
            sums[1] += reg_value.detach()
        if kd_value is not None:
            sums[2] += kd_value.detach()
        # DDP and FSDP average gradients over processes, so for the mean each process divides by its own micro-step
        # count only, and for the sum over all gradient_accumulation_steps micro-batches it multiplies by the count
        # of processes (gradient_accumulation_steps / micro_steps): neither depends on how many there are
        scaler.scale(total * world_size if grad_accum_reduction == 'sum' else total / micro_steps).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        # the norm of the whole gradient, also under FSDP (its DTensor shards reduce across processes)
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    step += 1
    if active_forgetting_every > 0 and step % active_forgetting_every == 0 and step < max_iters:
        forget_embedding(embedding, optimizer, seed, step)

    if step % log_interval == 0 or step == max_iters:
        if distributed:
            dist.all_reduce(sums)
        ce_mean, reg_mean, kd_mean = (sums / gradient_accumulation_steps).tolist()
        stop_if_loss_diverged(ce_mean + reg_mean + kd_mean)
        now = time.time()
        steps = step - step_last  # since the last log line: fewer than log_interval at the end, or after a resume
        dt, t_last, step_last, last_train_loss = (now - t_last) / steps, now, step, ce_mean
        # MFU of the model's own FLOPs, once past the first step (which includes compilation); None on CPU
        mfu = raw_model.estimate_mfu(tokens_per_step / dt / world_size, block_size, device_name)
        mfu = mfu if step - step_start > 1 else None
        eta_min = (now - t_start) / (step - step_start) * (max_iters - step) / 60
        log.train_step({'step': step, 'train_loss': ce_mean, 'reg_loss': reg_mean if reg != 'none' else None,
                        'kd_loss': kd_mean if teacher else None, 'lr': lr, 'emb_lr': emb_lr,
                        'grad_norm': local(grad_norm).item() if grad_clip > 0 else None,  # before clipping
                        'steps': steps, 'ms_per_step': dt * 1e3, 'tokens_per_s': tokens_per_step / dt, 'mfu': mfu,
                        'mem_gb': torch.cuda.max_memory_allocated(device) / 1e9 if device_type == 'cuda' else None},
                       max_iters, reg, eta_min)

    if step % eval_interval == 0 or step == max_iters:
        val_loss, probe = evaluate()
        stop_if_loss_diverged(val_loss)
        log({'step': step, 'val_loss': val_loss, **probe},
            f"eval step {step} | val {val_loss:.4f} | mean cos by layer "
            + " ".join(f"{c:.2f}" for c in probe['mean_cossim']))
        final_compute = save('ckpt.pt')  # the last one is the run's: eval.json carries the same training time
        log.draw()
    if eval_tasks and lm_eval_interval > 0 and step % lm_eval_interval == 0 and step < max_iters and master:
        lm_eval_now()  # the last step's evaluation is the final one, below
    if snapshot_interval > 0 and step % snapshot_interval == 0:
        save(f'ckpt_{step:06d}.pt', full_weights=True)

    if any_process(len(stop_signal) > 0, device):  # all stop together, or the others would hang in a collective
        save('ckpt.pt')
        if master:
            print(f"stopped by signal at step {step}; checkpoint saved to {out_dir}/{SHARDED if fsdp else 'ckpt.pt'} "
                  f"(continue with --init_from=resume)", flush=True)
        if distributed:
            dist.destroy_process_group()
        sys.exit(0)

# ----------------------------------------------------------------------------- end of run (ckpt.pt: at the last eval)
if fsdp:  # and ckpt.pt with the full weights, for measure.py, eval.py, sample.py; the master measures that model
    final_compute = save('ckpt.pt', full_weights=True)
    raw_model = load_checkpoint(os.path.join(out_dir, 'ckpt.pt'), device=device)[0] if master else None
if master:  # the paper's condensation measurement (measure.py's) on val windows: condensation.json, .csv, figures
    from condensation import measure_run
    from measure import token_windows
    windows, starts = token_windows(load_tokens(data_dir, 'val'), condensation_samples, block_size, seed)
    result = measure_run(raw_model.eval().hidden_states, windows, starts, batch_size, device, step=step, seed=seed,
                         name=os.path.basename(os.path.normpath(out_dir)), source=out_dir,
                         windows=f"dataset:{dataset}", dtype='float32', measures=probe_measures)
    log.write_condensation(result)
    rho = result['spearman']  # None when every layer's mean is the same
    print(f"done: {step} steps, final train loss {last_train_loss:.4f} | mean cos by hidden state "
          f"{' '.join(f'{c:.2f}' for c in result['mean_cossim'])} | spearman {'n/a' if rho is None else f'{rho:.3f}'}"
          f" | files in {out_dir}/")
    if eval_tasks:  # lm-eval on the final model, as the official runs; eval.json with the run's history
        n = log.write_eval({'seed': seed, 'config': config, 'compute': final_compute or log.compute(),
                            **lm_eval_now()})
        print(f"lm-eval results in {out_dir}/eval.json ({n} evaluation(s) in its history)")
    log.close()
if distributed:
    dist.destroy_process_group()
