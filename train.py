"""
The one training loop: pre-training from scratch, mid-training a Hugging Face model, distillation, with the
dispersion loss or any alternative regularizer of the paper. CPU, one GPU, or many through torchrun.

    python train.py config/demo.py                                       # CPU, offline, minutes
    python train.py config/midtrain_gpt2_disp.py --batch_size=8          # one GPU
    torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp.py
    python train.py config/demo.py --init_from=resume                    # continue exactly

Each optimizer step trains on a global batch of batch_size * gradient_accumulation_steps windows whose
offsets are a function of (seed, step) alone: N processes split that batch between them, so they train
exactly what one process with N times the accumulation trains, and a resumed run sees the same data.
Outputs in out_dir: ckpt.pt (atomic; at every eval, at the end, on SIGTERM/SIGINT), ckpt_{step:06d}.pt
snapshots when asked, metrics.jsonl (one JSON object per logged step), run.json (config, versions),
condensation.json and condensation.png at the end.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from contextlib import nullcontext

# -----------------------------------------------------------------------------
# defaults (every name here is a config key: config/*.py files and --key=value override them)
# I/O
out_dir = 'out'
init_from = 'scratch'        # 'scratch' | 'resume' | a hub id ('gpt2', 'Qwen/Qwen3-0.6B') | a local HF dir
dataset = 'pydocs'           # a folder under data/ or a path holding train.bin, val.bin, meta.json
eval_interval = 200          # steps between evaluations (val loss + condensation probe + ckpt.pt)
eval_iters = 20              # val batches per evaluation (fixed windows, the same at every eval)
log_interval = 10            # steps between log lines / metrics.jsonl records
snapshot_interval = 0        # keep ckpt_{step:06d}.pt every this many steps (0 = off)
condensation_samples = 100   # val windows measured at the end (condensation.json, heatmap.png)
eval_tasks = ''              # lm-eval at the end: comma-separated tasks, 'paper' = the ten, '' = none
wandb_log = False
wandb_project = 'dispersion'
wandb_run_name = ''
dry_run = False              # resolve and print the config, then exit without touching data or disk
# data and batch
batch_size = 8               # windows per micro-step per process
block_size = 256             # tokens per window
gradient_accumulation_steps = 1  # micro-steps per optimizer step, summed over all processes
# model, for init_from='scratch'
arch = 'gpt'                 # 'gpt' (GPT-2 family) | 'qwen3'
n_layer = 6
n_head = 6
n_embd = 384
mlp_hidden = None            # MLP width; None = 4*n_embd (gpt) or 3*n_embd (qwen3, as Qwen3-0.6B)
n_kv_head = None             # qwen3: key/value heads for grouped-query attention; None = n_head
head_dim = None              # qwen3: None = n_embd // n_head
rope_theta = 1e6             # qwen3
bias = True                  # gpt: biases in Linear and LayerNorm
dropout = 0.0                # HF GPT-2 trains with 0.1; applies to hub/HF starts too
# optimizer and schedule
max_iters = 1000             # optimizer steps; ignored when max_tokens > 0
max_tokens = 0               # token budget (the paper states these, e.g. 200M); sets max_iters
learning_rate = 6e-4
min_lr = 6e-5                # cosine decays to this
warmup_iters = 100
warmup_frac = 0.0            # > 0: warmup_iters = ceil(warmup_frac * max_iters) (official runs: 0.2)
lr_decay_iters = None        # None = max_iters
weight_decay = 0.1           # on matrices and embeddings, not on biases and norms
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0              # 0 = off
# regularizers (losses.py)
reg = 'none'                 # none | dispersion | decorrelation | l2_repel | orthogonalization | infonce_cos
reg_coeff = 0.1              # lambda in L = L_train + lambda * L_reg (paper Table 4 best: 0.1)
reg_tau = 1.0                # temperature tau (dispersion, l2_repel, infonce_cos)
reg_loc = 'all'              # all | early_half | late_half | last | a list of hidden-state indices
reg_max_tokens = None        # subsample this many positions per sequence (official: 256); None = all
reg_clamp = 0.1              # cosines clamped to [-1+c, 1-c] (dispersion, orthogonalization); official
                             # GPT-2 runs 0.1, Qwen3 runs 0.25
noisy_embedding_alpha = 0.0  # NEFTune alpha: U(-a, a) noise, a = alpha / sqrt(T * d); 0 = off
active_forgetting_every = 0  # re-initialise the token embedding every K steps; 0 = off
af_emb_lr = 5e-5             # active forgetting: peak lr of the embedding's own cyclic schedule
af_emb_warmup_frac = 0.08    # active forgetting: warmup fraction of each embedding lr cycle
teacher = ''                 # distillation: hub id, HF dir or train.py out_dir of a frozen teacher
kd_coeff = 1.0               # L = L_train + kd_coeff * T^2 KL(teacher || student)
kd_temperature = 2.0
# system
device = 'auto'              # 'auto' = cuda if available, else cpu
dtype = 'auto'               # 'auto' = bfloat16 on CUDA when supported, else float32 | float16 | float32
compile = None               # torch.compile the model (and, on CUDA, the regularizer's tiles); None = on for CUDA
seed = 1337
# -----------------------------------------------------------------------------
from configurator import configure, die  # noqa: E402
config = configure(globals(), types={'reg_loc': (str, list), 'compile': (bool, type(None)),
                                     'mlp_hidden': (int, type(None)), 'n_kv_head': (int, type(None)),
                                     'head_dim': (int, type(None)), 'lr_decay_iters': (int, type(None)),
                                     'reg_max_tokens': (int, type(None)), 'eval_tasks': (str, list)})

# heavy imports after configure: a config error is reported at once
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

import losses  # noqa: E402
from data import dataset_dir, load_meta, load_tokens  # noqa: E402
from model import GPT, GPTConfig, Qwen3, Qwen3Config, from_pretrained, load_checkpoint, save_checkpoint  # noqa: E402

if reg not in ('none', *losses.REGULARIZERS):
    die(f"unknown regularizer reg='{reg}' (choose from: none, {', '.join(losses.REGULARIZERS)})", 2)
if reg != 'none' and isinstance(reg_loc, str) and reg_loc not in losses.LOCATIONS:
    die(f"unknown reg_loc='{reg_loc}' (one of: {', '.join(losses.LOCATIONS)}, or a list of hidden-state indices)", 2)
if sum([reg != 'none', noisy_embedding_alpha > 0, active_forgetting_every > 0]) > 1:
    print("note: several counter-condensation methods are on at once (the paper runs them one at a time)")

# ----------------------------------------------------------------------------- processes and devices
ddp = int(os.environ.get('RANK', -1)) != -1
if device == 'auto':
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
if ddp:
    rank, local_rank, world_size = int(os.environ['RANK']), int(os.environ['LOCAL_RANK']), int(os.environ['WORLD_SIZE'])
    if device.startswith('cuda'):
        device = f'cuda:{local_rank}'
        torch.cuda.set_device(device)
else:
    rank, local_rank, world_size = 0, 0, 1
master = rank == 0
device_type = 'cuda' if device.startswith('cuda') else 'cpu'
if dtype == 'auto':
    dtype = 'bfloat16' if device_type == 'cuda' and torch.cuda.is_bf16_supported() else 'float32'
if compile is None:
    compile = device_type == 'cuda'
if gradient_accumulation_steps % world_size:
    die(f"gradient_accumulation_steps={gradient_accumulation_steps} must be divisible by the {world_size} processes", 2)
micro_steps = gradient_accumulation_steps // world_size  # micro-steps of this process per optimizer step
global_batch = batch_size * gradient_accumulation_steps  # windows per optimizer step
tokens_per_step = global_batch * block_size
if max_tokens > 0:
    max_iters = math.ceil(max_tokens / tokens_per_step)
if lr_decay_iters is None:
    lr_decay_iters = max_iters
if warmup_frac > 0:
    warmup_iters = math.ceil(warmup_frac * max_iters)
config.update(device=device, dtype=dtype, compile=compile, max_iters=max_iters, lr_decay_iters=lr_decay_iters,
              warmup_iters=warmup_iters)
if master:
    print(f"tokens per step: {tokens_per_step:,} ({global_batch} windows x {block_size} tokens) | "
          f"{max_iters} steps = {max_iters * tokens_per_step:,} tokens | {world_size} process(es), "
          f"{micro_steps} micro-step(s) each")
if dry_run:
    print(json.dumps(config, indent=2))
    sys.exit(0)

if ddp:
    dist.init_process_group(backend='nccl' if device_type == 'cuda' else 'gloo')
torch.manual_seed(seed + rank)  # dropout and noise differ per rank; the data does not (see get_batch)
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
    """Windows first..first+count-1 of the list of windows keyed by (split, index); (x, y) on device.

    Offsets come from a numpy generator seeded with (seed, split, index): the global batch of an optimizer
    step depends on nothing else (not on the process count, not on what was consumed before), and each
    process reads only its own share of it.
    """
    data = load_tokens(data_dir, split)  # a fresh memmap per batch: long-lived ones leak memory
    rng = np.random.default_rng([seed, 0 if split == 'train' else 1, index])
    starts = rng.integers(0, len(data) - block_size - 1, size=global_batch)[first:first + count]
    x = torch.from_numpy(np.stack([data[s:s + block_size] for s in starts]).astype(np.int64))
    y = torch.from_numpy(np.stack([data[s + 1:s + 1 + block_size] for s in starts]).astype(np.int64))
    if device_type == 'cuda':
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


# ----------------------------------------------------------------------------- model
def build_scratch_model():
    if arch == 'gpt':
        return GPT(GPTConfig(block_size=block_size, vocab_size=data_meta['vocab_size'], n_layer=n_layer,
                             n_head=n_head, n_embd=n_embd, dropout=dropout, bias=bias, mlp_hidden=mlp_hidden))
    if arch == 'qwen3':
        return Qwen3(Qwen3Config(vocab_size=data_meta['vocab_size'], hidden_size=n_embd,
                                 intermediate_size=mlp_hidden or 3 * n_embd, num_hidden_layers=n_layer,
                                 num_attention_heads=n_head, num_key_value_heads=n_kv_head or n_head,
                                 head_dim=head_dim or n_embd // n_head, max_position_embeddings=block_size,
                                 rope_theta=rope_theta, tie_word_embeddings=True, dropout=dropout))
    die(f"unknown arch='{arch}' (choose from: gpt, qwen3)", 2)


def load_any(name):
    """A train.py out_dir / .pt file, else a hub id or HF directory; float32 on CPU."""
    if name.endswith('.pt') or os.path.isfile(os.path.join(name, 'ckpt.pt')):
        return load_checkpoint(name)
    return from_pretrained(name), None


step, resume_ckpt = 0, None
try:
    if init_from == 'scratch':
        model = build_scratch_model()
    elif init_from == 'resume':
        model, resume_ckpt = load_checkpoint(out_dir)
        step = resume_ckpt['step']
        if resume_ckpt['data_meta']['tokenizer'] != data_meta['tokenizer']:
            die(f"checkpoint was trained on tokenizer '{resume_ckpt['data_meta']['tokenizer']}' but dataset "
                f"'{dataset}' uses '{data_meta['tokenizer']}'")
    else:
        model = from_pretrained(init_from, dropout=dropout)
except (FileNotFoundError, ValueError) as e:
    die(str(e))
arch = 'gpt' if isinstance(model, GPT) else 'qwen3'
if data_meta['vocab_size'] > model.config.vocab_size:
    die(f"dataset vocabulary ({data_meta['vocab_size']}) is larger than the model's ({model.config.vocab_size})")
if block_size > model.max_seq_len:
    die(f"block_size={block_size} is beyond the model's {model.max_seq_len} positions")
num_hidden = len(model.blocks) + 1  # the embedding, then one hidden state per block
try:  # index lists are checked against the real model's depth
    reg_layers = losses.select_layers(num_hidden, reg_loc) if reg != 'none' else []
except ValueError as e:
    die(f"reg_loc: {e}", 2)
reg_kwargs = {'clamp': reg_clamp} if reg in ('dispersion', 'orthogonalization') else {}
model.to(device)
raw_model = model  # unwrapped handle: saved, exported and measured (no prefix stripping anywhere)

teacher_model = None
if teacher:
    try:
        teacher_model, teacher_ckpt = load_any(teacher)
    except (FileNotFoundError, ValueError) as e:
        die(f"teacher: {e}")
    # KL over the vocabulary needs the same token ids: same size, and the same tokenizer when we know it
    if teacher_model.config.vocab_size != model.config.vocab_size:
        die(f"teacher vocabulary ({teacher_model.config.vocab_size}) differs from the student's "
            f"({model.config.vocab_size}): distillation needs the same tokenizer")
    if teacher_ckpt is not None and teacher_ckpt['data_meta']['tokenizer'] != data_meta['tokenizer']:
        die(f"teacher tokenizer '{teacher_ckpt['data_meta']['tokenizer']}' differs from the data's "
            f"'{data_meta['tokenizer']}'")
    teacher_model.to(device).eval().requires_grad_(False)

# NEFTune (Jain et al. 2023): uniform noise on the token embeddings, in training only. A forward hook keeps
# model.py free of training concerns; for GPT-2 it acts before the position embedding is added, as the
# official baseline (which passes noisy token embeddings as inputs_embeds).
if noisy_embedding_alpha > 0:
    def neftune_hook(module, inputs, output):
        if not module.training:
            return output
        magnitude = noisy_embedding_alpha / math.sqrt(output.size(1) * output.size(2))  # alpha / sqrt(T*d)
        return output + torch.empty_like(output).uniform_(-magnitude, magnitude)
    raw_model.get_input_embeddings().register_forward_hook(neftune_hook)

# ----------------------------------------------------------------------------- optimizer
# Weight decay on every matrix and embedding (dim >= 2), none on biases and norm weights (as HF's Trainer).
# With active forgetting the token embedding gets a group of its own: its own cyclic lr and state resets.
embedding = raw_model.get_input_embeddings().weight
separate_embedding = active_forgetting_every > 0
params = [p for p in raw_model.parameters() if p.requires_grad and not (separate_embedding and p is embedding)]
groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
          {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
if separate_embedding:
    groups.append({'params': [embedding], 'weight_decay': weight_decay, 'is_embedding': True})
optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=(beta1, beta2), fused=device_type == 'cuda')
scaler = torch.amp.GradScaler(device_type, enabled=ptdtype == torch.float16)
if resume_ckpt is not None:
    optimizer.load_state_dict(resume_ckpt['optimizer'])
    if 'scaler' in resume_ckpt:
        scaler.load_state_dict(resume_ckpt['scaler'])


def get_lr(it):
    """Linear warmup, cosine decay to min_lr at lr_decay_iters, then min_lr. `it` counts from 0."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    progress = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


def get_embedding_lr(it):
    """Active forgetting's embedding lr (Chen et al. 2023): one warmup + linear decay cycle every K steps,
    the main schedule evaluated at the compressed index (it * floor(T / K)) mod T, T = max_iters."""
    cycle = max(1, max_iters // active_forgetting_every)
    e = (it * cycle) % max_iters
    warm = max(1, math.ceil(af_emb_warmup_frac * max_iters))
    return af_emb_lr * (e / warm if e < warm else max(0.0, (max_iters - e) / max(1, max_iters - warm)))


def forget_embedding(at_step):
    """Re-draw the token embedding N(0, 0.02) (the head tied to it goes with it) and clear its Adam state.

    Every rank draws the same tensor from a generator seeded by (seed, step): no broadcast needed. The
    official re-implementation also zeroes the pad row, which for GPT-2 is end-of-text; our packed data has
    no padding, so every row is re-drawn.
    """
    g = torch.Generator(device='cpu').manual_seed(seed * 1_000_003 + at_step)
    with torch.no_grad():
        embedding.copy_(torch.randn(embedding.shape, generator=g) * 0.02)
    state = optimizer.state.get(embedding, {})
    for key in ('exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'):
        if key in state:
            state[key].zero_()
    if 'step' in state:
        state['step'].zero_()  # bias correction restarts, as the embedding is new


# ----------------------------------------------------------------------------- compile, DDP
model = raw_model
if compile:
    model = torch.compile(model)
else:  # compile=False runs everything eagerly, the regularizer's fused tiles included (losses.COMPILE_ON)
    losses.COMPILE_ON = ()
if ddp:
    model = DDP(model, device_ids=[local_rank] if device_type == 'cuda' else None)


def train_loss_fn(x, y, micro_index):
    """Next-token loss plus the active regularizer / distillation. Returns (total, ce, reg, kd)."""
    want_hidden = reg != 'none'
    with autocast:
        out = model(x, y, return_hidden=want_hidden)
    logits, ce = out[0], out[1]
    total, reg_value, kd_value = ce, None, None
    if want_hidden:
        # one generator per global micro-step: token subsampling does not depend on the process count
        gen = torch.Generator(device=x.device).manual_seed(seed * 1_000_003 + micro_index)
        reg_value = losses.hidden_reg_loss(out[2], reg, loc=reg_layers, tau=reg_tau, max_tokens=reg_max_tokens,
                                           generator=gen, **reg_kwargs)
        total = total + reg_coeff * reg_value
    if teacher_model is not None:
        with torch.no_grad(), autocast:
            teacher_logits = teacher_model(x)[0]
        kd_value = losses.distillation(logits, teacher_logits, kd_temperature)
        total = total + kd_coeff * kd_value
    return total, ce, reg_value, kd_value


@torch.no_grad()
def evaluate():
    """Val loss and the live condensation probe (per-layer mean cosine, measure.py's definition) on fixed
    val windows, split across processes and summed."""
    from measure import mean_cossim
    model.eval()
    sums = torch.zeros(2 + num_hidden, device=device, dtype=torch.float64)  # loss, windows, cos per layer
    for k in range(rank, eval_iters, world_size):
        x, y = get_batch('val', k, 0, batch_size)
        with autocast:
            _, loss, hidden = raw_model(x, y, return_hidden=True)
        sums[0] += loss.item() * x.size(0)
        sums[1] += x.size(0)
        sums[2:] += torch.tensor(mean_cossim(hidden), device=device, dtype=torch.float64) * x.size(0)
    if ddp:
        dist.all_reduce(sums)
    model.train()
    return (sums[0] / sums[1]).item(), (sums[2:] / sums[1]).tolist()


def checkpoint_dict():
    return {'arch': arch, 'model_args': dict(vars(raw_model.config)), 'model': raw_model.state_dict(),
            'optimizer': optimizer.state_dict(), 'scaler': scaler.state_dict(), 'step': step, 'config': config,
            'data_meta': data_meta, 'data_position': {'scheme': 'windows of (seed, step)', 'seed': seed, 'step': step},
            'rng': {'torch': torch.get_rng_state(),
                    'cuda': torch.cuda.get_rng_state() if device_type == 'cuda' else None}}


def save(path):
    if master:
        save_checkpoint(checkpoint_dict(), path)


def git_commit():
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except OSError:
        return None


# ----------------------------------------------------------------------------- logging
stop_signal = []
for sig in (signal.SIGTERM, signal.SIGINT):  # clusters preempt with SIGTERM: save, then leave
    signal.signal(sig, lambda signum, frame: stop_signal.append(signum))

if resume_ckpt is not None:
    torch.set_rng_state(resume_ckpt['rng']['torch'])
    if device_type == 'cuda' and resume_ckpt['rng']['cuda'] is not None:
        torch.cuda.set_rng_state(resume_ckpt['rng']['cuda'])
    del resume_ckpt
wandb = None
if master:
    os.makedirs(out_dir, exist_ok=True)
    versions = {'python': sys.version.split()[0], 'torch': torch.__version__, 'numpy': np.__version__,
                'cuda': torch.version.cuda, 'git': git_commit(), 'device': torch.cuda.get_device_name()
                if device_type == 'cuda' else 'cpu', 'world_size': world_size}
    print(f"versions: {json.dumps(versions)}")
    print(f"model: {arch}, {raw_model.num_params() / 1e6:.2f}M parameters | reg={reg} on hidden states "
          f"{reg_layers} | start at step {step}")
    with open(os.path.join(out_dir, 'run.json'), 'w') as f:
        json.dump({'config': config, 'versions': versions, 'data_meta': data_meta}, f, indent=2)
    if wandb_log:
        import wandb
        wandb.init(project=wandb_project, name=wandb_run_name or None, config=config)
    metrics_file = open(os.path.join(out_dir, 'metrics.jsonl'), 'a' if init_from == 'resume' else 'w')

PEAK_FLOPS = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12, 'L4': 121e12, 'A10': 125e12}  # dense bf16
peak_flops = next((v for k, v in PEAK_FLOPS.items() if device_type == 'cuda' and k in torch.cuda.get_device_name()),
                  None)
flops_per_step = raw_model.flops_per_token(block_size) * tokens_per_step


def log(record):
    if master:
        metrics_file.write(json.dumps(record) + '\n')
        metrics_file.flush()
        if wandb is not None:
            wandb.log(record, step=record['step'])


def check_finite(bad_step, weights=False):
    """Stop, keeping the last good checkpoint, if a loss since the last check was NaN or inf (or, before a
    save, if any weight is: the update after the last finite loss may already have broken the model)."""
    bad = int(bad_step.item())  # a sync point: only at log, eval and save time
    if bad < 0 and weights and not all(torch.isfinite(p).all() for p in raw_model.parameters()):
        bad = step
    if bad >= 0:
        die(f"loss became non-finite at step {bad}; stopping without saving (last good checkpoint kept in "
            f"{out_dir})")


# ----------------------------------------------------------------------------- training loop
model.train()
bad_step = torch.tensor(-1, device=device)  # first step whose loss was non-finite, kept on device
t_start, step_start = time.time(), step
t_last = t_start
train_losses_last = float('nan')
while step < max_iters:
    lr = get_lr(step)
    for group in optimizer.param_groups:
        group['lr'] = get_embedding_lr(step) if group.get('is_embedding') else lr
    sums = torch.zeros(3, device=device)  # ce, reg, kd summed over this process's micro-steps
    for micro in range(micro_steps):
        micro_index = rank * micro_steps + micro  # this micro-step's place in the step's global batch
        x, y = get_batch('train', step, micro_index * batch_size, batch_size)
        if ddp:  # sync gradients only on the last micro-step (what no_sync() does, without the context)
            model.require_backward_grad_sync = micro == micro_steps - 1
        total, ce, reg_value, kd_value = train_loss_fn(x, y, step * gradient_accumulation_steps + micro_index)
        sums[0] += ce.detach()
        if reg_value is not None:
            sums[1] += reg_value.detach()
        if kd_value is not None:
            sums[2] += kd_value.detach()
        # DDP averages gradients over processes, so each process divides by its own micro-step count only
        scaler.scale(total / micro_steps).backward()
    bad_step = torch.where((bad_step < 0) & ~torch.isfinite(sums.sum()), torch.tensor(step + 1, device=device),
                           bad_step)
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    step += 1
    if active_forgetting_every > 0 and step % active_forgetting_every == 0 and step < max_iters:
        forget_embedding(step)

    if step % log_interval == 0 or step == max_iters:
        if ddp:
            dist.all_reduce(sums)
        sums = (sums / gradient_accumulation_steps).tolist()
        check_finite(bad_step)
        now = time.time()
        steps_done = step - step_start
        dt = (now - t_last) / min(log_interval, steps_done)
        t_last = now
        eta = (now - t_start) / steps_done * (max_iters - step)
        train_losses_last = sums[0]
        record = {'step': step, 'train_loss': sums[0], 'lr': lr, 'ms_per_step': dt * 1e3,
                  'tokens_per_s': tokens_per_step / dt}
        line = f"step {step}/{max_iters} | loss {sums[0]:.4f}"
        if reg != 'none':
            record['reg_loss'] = sums[1]
            line += f" | {reg} {sums[1]:.4f}"
        if teacher_model is not None:
            record['kd_loss'] = sums[2]
            line += f" | kd {sums[2]:.4f}"
        line += f" | lr {lr:.2e} | {dt * 1e3:.0f}ms | {tokens_per_step / dt / 1e3:.1f}k tok/s"
        if peak_flops and steps_done > 1:
            record['mfu'] = flops_per_step / dt / world_size / peak_flops
            line += f" | mfu {record['mfu'] * 100:.1f}%"
        log(record)
        if master:
            print(line + f" | eta {eta / 60:.1f}min", flush=True)

    if step % eval_interval == 0 or step == max_iters:
        check_finite(bad_step, weights=True)
        val_loss, cos = evaluate()
        if not math.isfinite(val_loss):
            bad_step.fill_(step)
            check_finite(bad_step)
        log({'step': step, 'val_loss': val_loss, 'mean_cossim': cos})
        if master:
            print(f"eval step {step} | val {val_loss:.4f} | mean cos by layer "
                  + " ".join(f"{c:.2f}" for c in cos), flush=True)
        save(os.path.join(out_dir, 'ckpt.pt'))
    if snapshot_interval > 0 and step % snapshot_interval == 0:
        check_finite(bad_step, weights=True)
        save(os.path.join(out_dir, f'ckpt_{step:06d}.pt'))

    stop = torch.tensor(len(stop_signal), device=device)
    if ddp:  # every rank must agree to stop, or the others would hang in the next all-reduce
        dist.all_reduce(stop)
    if stop.item() > 0:
        check_finite(bad_step, weights=True)
        save(os.path.join(out_dir, 'ckpt.pt'))
        if master:
            print(f"stopped by signal at step {step}; checkpoint saved to {out_dir}/ckpt.pt "
                  f"(continue with --init_from=resume)", flush=True)
        if ddp:
            dist.destroy_process_group()
        sys.exit(0)

# ----------------------------------------------------------------------------- end of run
check_finite(bad_step, weights=True)
save(os.path.join(out_dir, 'ckpt.pt'))
if master:
    # the paper's condensation measurement on val windows: condensation.json and the heatmap (measure.py)
    from measure import measure_run, token_windows, write_outputs
    raw_model.eval()
    windows, starts = token_windows(load_tokens(data_dir, 'val'), condensation_samples, block_size, seed)
    result = measure_run(raw_model.hidden_states, windows, starts, batch_size, device, step=step, seed=seed,
                         name=os.path.basename(os.path.normpath(out_dir)), source=out_dir,
                         windows=f"dataset:{dataset}", dtype='float32')
    write_outputs([result], out_dir)
    cos, rho = result['mean_cossim'], result['spearman']  # rho is None when every layer's mean is the same
    print(f"done: {step} steps, final train loss {train_losses_last:.4f} | mean cos by hidden state "
          f"{' '.join(f'{c:.2f}' for c in cos)} | spearman {'n/a' if rho is None else f'{rho:.3f}'} | "
          f"files in {out_dir}/")
    if eval_tasks:  # lm-eval on the final model, as the official runs; eval.py --table reads eval.json
        from eval import evaluate as lm_eval_evaluate, write_atomic, to_json
        tasks = None if eval_tasks == 'paper' else eval_tasks  # None = the paper's ten, family settings
        results = lm_eval_evaluate(raw_model, data_meta['tokenizer'], tasks, device=device, seed=seed)
        write_atomic(os.path.join(out_dir, 'eval.json'), to_json({'seed': seed, 'config': config, **results}))
        print(f"lm-eval results in {out_dir}/eval.json")
    metrics_file.close()
if ddp:
    dist.destroy_process_group()
