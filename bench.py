"""
Step time, memory and overhead of every regularizer on train.py's real path, side by side, and the same step
through Hugging Face's GPT2LMHeadModel with the official dispersion loss ("hf").

    OMP_NUM_THREADS=2 python bench.py                                      # CPU: GPT 6x384, T=256, B=4, all five
    OMP_NUM_THREADS=2 python bench.py --block_size=1024 --batch_size=1 --regs=dispersion
    OMP_NUM_THREADS=2 python bench.py --regs=dispersion --reg_impl=reference,tiled   # the definition vs the fast path
    python bench.py --n_layer=12 --n_head=12 --n_embd=768 --block_size=1024 --batch_size=16 \
        --regs=dispersion --json=bench.json                                # one GPU: bf16 + torch.compile

A step is what train.py does for one micro-step (gradient_accumulation_steps=1): the model train.py builds
(model.build_model) and its optimizer (configure_optimizers), forward with the hidden states, next-token loss +
reg_coeff * losses_tiled.hidden_reg_loss(...), backward, gradient clipping, AdamW step, zero_grad.
The variants run round-robin, `repeats` rounds of `steps` steps each, after `warmup` steps each, so a change in
the machine's load hits them all alike; every step draws a fresh random batch (a batch repeated step after step
drives the softmax into denormal floats on CPU, which slows everything down). Reported: the median ms/step,
tokens/s, the overhead over 'none' (median over rounds of the per-round ratio), memory, and MFU on CUDA.
Results and the commands behind them: docs/bench.md.
"""

import importlib.metadata
import json as jsonlib  # `json` is a config key (the output path)
import math
import os
import platform
import resource
import statistics
import time
from contextlib import nullcontext
from datetime import datetime, timezone

import torch

from configurator import Annotated, Choice, Device, Range  # the allowed values of the keys below

# -----------------------------------------------------------------------------
# defaults (every name is a config key, overridden by a config file or --key=value; the annotations say what each
# allows, checked before anything runs: configurator.py)
# model shape, as train.py's keys for init_from='scratch'
arch: Choice('gpt', 'qwen3') = 'gpt'
n_layer: Range(min=1) = 6
n_head: Range(min=1) = 6
n_embd: Range(min=1) = 384  # gpt: a multiple of n_head
mlp_hidden: Annotated[int | None, Range(min=1)] = None  # None = 4*n_embd (gpt) or 3*n_embd (qwen3)
n_kv_head: Annotated[int | None, Range(min=1)] = None  # qwen3 only (a divisor of n_head); None = n_head
head_dim: Annotated[int | None, Range(min=1)] = None  # qwen3 only; None = n_embd // n_head
block_size: Range(min=1) = 256  # tokens per sequence (T)
batch_size: Range(min=1) = 4  # sequences per step (B)
vocab_size: Range(min=1) = 50257  # GPT-2's vocabulary: the lm_head and the softmax are a large part of a small
                             # model's step
# the regularizers, as train.py's keys
regs: Annotated[str | list, Choice(names_in='losses.REGULARIZERS', many=True)] = ','.join(
    ['dispersion', 'orthogonalization', 'l2_repel', 'decorrelation', 'infonce_cos'])  # timed besides 'none'
reg_coeff = 0.1
reg_tau: Range(above=0) = 1.0
reg_clamp: Range(above=0, below=1) = 0.1  # dispersion, orthogonalization (and the official loss of the hf variant)
reg_loc: Annotated[str | list, Choice(names_in='losses.LOCATIONS')] = 'all'  # all | early_half | late_half | last
                             # | a list of hidden-state indices
reg_max_tokens: Annotated[int | None, Range(min=1)] = None  # token subsampling per sequence; None = all tokens
reg_impl: Annotated[str | list, Choice(names_in='losses_tiled.IMPLS', many=True)] = 'auto'  # or a comma list, to
                             # time each (variants 'name:impl')
grad_clip: Range(min=0) = 1.0  # as train.py's default; 0 = off
hf: bool | None = None       # also time the HF model + the official loss; None = on for arch='gpt'
# timing
steps: Range(min=1) = 5      # timed steps per variant per round
warmup: Range(min=1) = 2     # untimed steps per variant first (torch.compile, the allocator, AdamW's state, which
                             # must exist before memory is measured)
repeats: Range(min=1) = 5    # rounds over all variants
json = ''                    # write the results to this JSON file ('' = no file)
# system
device: Device() = 'auto'    # 'auto' = cuda if available, else cpu; or cpu, cuda, cuda:N, mps
dtype: Choice('auto', 'float32', 'bfloat16', 'float16') = 'auto'  # 'auto' = bfloat16 on CUDA (autocast, as
                             # train.py), else float32
compile: bool | None = None  # torch.compile our model; None = on for CUDA. The hf variant runs eager, as the
                             # official scripts run it (HF Trainer's torch_compile is off by default)
seed = 1337
# -----------------------------------------------------------------------------
from configurator import configure, die, one_line  # noqa: E402
config = configure(globals())

import losses  # noqa: E402  (after configure: a config error must not wait for heavy imports)
import losses_tiled  # noqa: E402
from atomic import atomic_write  # noqa: E402
from hf_io import to_hf  # noqa: E402
from model import build_model  # noqa: E402

as_list = lambda v: [r.strip() for r in v.split(',') if r.strip()] if isinstance(v, str) else list(v)
regs, impls = as_list(regs), as_list(reg_impl)
# constraints between keys (each key's own allowed values: the annotations above, checked by configure)
if arch == 'gpt' and n_embd % n_head:
    die(f"n_embd={n_embd} must be a multiple of n_head={n_head} (arch='gpt' splits n_embd across the heads)", 2)
if arch == 'qwen3' and n_head % (n_kv_head or n_head):
    die(f"n_head={n_head} must be a multiple of n_kv_head={n_kv_head} (each key/value head serves a group)", 2)
try:
    reg_layers = losses.select_layers(n_layer + 1, reg_loc)
    for r in regs if 'tiled' in impls else []:  # as train.py: a fast path that no longer equals losses.py is refused
        losses_tiled.choose_impl(r, 'tiled', block_size, 'cpu', tau=reg_tau, clamp=reg_clamp)
except ValueError as e:
    die(str(e), 2)
if hf is None:
    hf = arch == 'gpt'
if device == 'auto':
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
device_type = 'cuda' if device.startswith('cuda') else 'cpu'
if dtype == 'auto':
    dtype = 'bfloat16' if device_type == 'cuda' and torch.cuda.is_bf16_supported() else 'float32'
if compile is None:
    compile = device_type == 'cuda'
config.update(regs=regs, reg_impl=impls, hf=hf, device=device, dtype=dtype, compile=compile)
json_path = json
if json_path and not os.path.isdir(os.path.dirname(os.path.abspath(json_path))):
    die(f"json='{json_path}': its folder does not exist", 2)  # found now, not after minutes of timing
if json_path and os.path.isdir(json_path):
    die(f"json='{json_path}' is a folder; it names a file", 2)

torch.manual_seed(seed)
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
autocast = nullcontext() if ptdtype == torch.float32 else torch.autocast(device_type, dtype=ptdtype)
load_start = os.getloadavg() if hasattr(os, 'getloadavg') else None  # the machine may be shared: record its load

# ----------------------------------------------------------------------------- our model and optimizer, as train.py's
raw_model = build_model(arch, vocab_size, block_size, n_layer, n_head, n_embd, mlp_hidden=mlp_hidden,
                        n_kv_head=n_kv_head, head_dim=head_dim)
# the HF twin is exported before training starts, so both begin from the same weights
hf_model = to_hf(raw_model).train().to(device) if hf else None
raw_model.train().to(device)
optimizer = raw_model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device_type)
# the HF twin's AdamW: the same update; which tensors decay does not change a step's time
hf_optimizer = torch.optim.AdamW(hf_model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                 fused=device_type == 'cuda') if hf else None
model = torch.compile(raw_model) if compile else raw_model
fuse_reg = compile and device_type == 'cuda'  # as train.py: the regularizer's tiles are fused where the model is


# ----------------------------------------------------------------------------- the official loss, naively
def official_dispersion(z, tau=1.0, clamp=0.1, max_tokens=None, generator=None, eps=1e-2):
    """The authors' `angular_spread` (github.com/KrishnaswamyLab/LM-Dispersion, lm_dispersion/dispersion.py), in
    plain autograd as they compute it: z / (||z|| + 1e-2), the straight-through clamp, -arccos / (pi tau) with an
    -inf diagonal, logsumexp + eps - log(T(T-1)); every intermediate [B, T, T] matrix is kept for backward. Not
    used for training, only to time the path a user of the official code runs."""
    B, T, _ = z.shape
    if max_tokens and T > max_tokens:  # one permutation for the whole batch, fresh per call
        keep = torch.randperm(T, generator=generator, device=generator.device if generator else z.device)
        z, T = z[:, keep[:max_tokens].to(z.device)], max_tokens
    z_unit = z / (z.norm(dim=-1, keepdim=True) + eps)
    cos = torch.bmm(z_unit, z_unit.transpose(1, 2))  # (B, T, T)
    cos = cos + (cos.clamp(-1 + clamp, 1 - clamp) - cos).detach()  # straight-through clamp
    logits = -torch.arccos(cos) / math.pi / tau
    logits = logits.masked_fill(torch.eye(T, dtype=torch.bool, device=z.device), float('-inf'))
    return (torch.logsumexp(logits.view(B, -1), dim=1) + eps - math.log(T * (T - 1))).mean()


def official_hidden_loss(hidden_states, generator):
    """The official trainer's loop: the loss of each selected hidden state, one at a time, averaged."""
    per_layer = [official_dispersion(hidden_states[i], reg_tau, reg_clamp, reg_max_tokens, generator)
                 for i in reg_layers]
    return sum(per_layer) / len(per_layer)


# ----------------------------------------------------------------------------- one training step per variant
step_count = 0
data_gen = torch.Generator(device=device).manual_seed(seed)


def get_batch():
    """A fresh random batch (x, y), y the next tokens of x."""
    seq = torch.randint(vocab_size, (batch_size, block_size + 1), device=device, generator=data_gen)
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def reg_loss(variant, hidden, gen):
    """losses_tiled.hidden_reg_loss as train.py calls it; variant is a regularizer's name, or 'name:impl'."""
    name, _, impl = variant.partition(':')
    return losses_tiled.hidden_reg_loss(hidden, name, loc=reg_layers, max_tokens=reg_max_tokens, generator=gen,
                                        impl=impl or impls[0], fuse=fuse_reg, tau=reg_tau, clamp=reg_clamp)


def variant_loss(variant, x, y, forward_model=None):
    """The loss train.py's train_loss computes (variant = 'none' or a regularizer), or the HF path ('hf')."""
    global step_count
    step_count += 1
    # train.py seeds one generator per micro-step (token subsampling); made here too, it is part of the path
    gen = torch.Generator(device=x.device).manual_seed(seed * 1_000_003 + step_count)
    if variant == 'hf':
        with autocast:  # the official loss runs inside HF Trainer's autocast too
            out = hf_model(input_ids=x, labels=x, output_hidden_states=True)
            return out.loss + reg_coeff * official_hidden_loss(out.hidden_states, gen)
    with autocast:
        out = (forward_model or model)(x, y, return_hidden=variant != 'none')
    loss = out[1]
    if variant != 'none':
        loss = loss + reg_coeff * reg_loss(variant, out[2], gen)
    return loss


def train_step(variant):
    """One full step: fresh batch, loss, backward, clip, AdamW, zero_grad. Returns its (wall, CPU) time in
    seconds; the CPU time of this process counts only the cores it got, so it is less sensitive to a shared
    machine's load (with OMP_NUM_THREADS=1 it is the work itself)."""
    params, opt = (hf_model.parameters(), hf_optimizer) if variant == 'hf' else (raw_model.parameters(), optimizer)
    x, y = get_batch()
    if device_type == 'cuda':
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    variant_loss(variant, x, y).backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device_type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


# ----------------------------------------------------------------------------- memory
def param_bytes(variant):
    m = hf_model if variant == 'hf' else raw_model
    return sum({p.data_ptr(): p.numel() * p.element_size() for p in m.parameters()}.values())  # tied ones once


def state_bytes(variant):
    """Bytes that live between steps: parameters and AdamW's state."""
    opt = hf_optimizer if variant == 'hf' else optimizer
    state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values()
                if torch.is_tensor(t) and t.device.type == device_type)
    return param_bytes(variant) + state


def saved_bytes(fn, keep_alive_anyway):
    """Run fn() and return (bytes of the distinct storages autograd saves for backward meanwhile, fn's result),
    leaving out storages in keep_alive_anyway (parameters, hidden states: they live whatever fn does)."""
    skip = {t.untyped_storage().data_ptr() for t in keep_alive_anyway}
    seen = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return t  # keep the tensor itself: no copy, we only look

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def probe_memory(variant):
    """(bytes the regularizer alone saves for backward, bytes the whole forward saves), measured eagerly (our
    model uncompiled) on one batch; nothing is stepped. The first is the regularizer's own footprint (what
    losses.py keeps small); the second, plus gradients and state_bytes, is the CPU estimate of the step's peak."""
    x, y = get_batch()
    m = hf_model if variant == 'hf' else raw_model
    params = list(m.parameters())
    total, _ = saved_bytes(lambda: variant_loss(variant, x, y, forward_model=raw_model), params)
    if variant == 'none':
        return 0, total
    gen = torch.Generator(device=x.device).manual_seed(seed)
    with autocast:
        if variant == 'hf':
            hidden = hf_model(input_ids=x, labels=x, output_hidden_states=True).hidden_states
            reg, _ = saved_bytes(lambda: official_hidden_loss(hidden, gen), params + list(hidden))
        else:
            hidden = raw_model(x, y, return_hidden=True)[2]
            reg, _ = saved_bytes(lambda: reg_loss(variant, hidden, gen), params + list(hidden))
    return reg, total


# ----------------------------------------------------------------------------- warm-up, then round-robin timing
# one variant per regularizer and implementation: 'dispersion', or 'dispersion:tiled' when several are timed
variants = ['none', *(r if len(impls) == 1 else f'{r}:{i}' for r in regs for i in impls)] + (['hf'] if hf else [])
tokens_per_step = batch_size * block_size
n_params = raw_model.num_params()
print(f"bench: {arch} {n_layer}x{n_embd}, {n_params / 1e6:.1f}M params, vocab {vocab_size}, B={batch_size} "
      f"T={block_size} ({tokens_per_step:,} tokens/step), reg on hidden states {reg_layers}, max_tokens "
      f"{reg_max_tokens}, {device} {dtype}, compile={compile}, {torch.get_num_threads()} threads")
print(f"variants: {', '.join(variants)} | {warmup} warm-up + {repeats} rounds x {steps} timed steps each")

try:
    for v in variants:
        for _ in range(warmup):
            train_step(v)
    round_ms = {v: [] for v in variants}  # per round: the median ms/step of the variant
    all_ms = {v: [] for v in variants}
    round_cpu_ms, all_cpu_ms = {v: [] for v in variants}, {v: [] for v in variants}  # the same in CPU time
    peak_step_bytes = {v: 0 for v in variants}  # CUDA: peak allocated during a step, above what was there before
    for r in range(repeats):
        order = variants[r % len(variants):] + variants[:r % len(variants)]  # rotate: no variant always goes first
        for v in order:
            if device_type == 'cuda':
                torch.cuda.reset_peak_memory_stats()
                before = torch.cuda.memory_allocated()
            ms, cpu_ms = zip(*[(1e3 * wall, 1e3 * cpu) for wall, cpu in (train_step(v) for _ in range(steps))])
            if device_type == 'cuda':
                peak_step_bytes[v] = max(peak_step_bytes[v], torch.cuda.max_memory_allocated() - before)
            round_ms[v].append(statistics.median(ms))
            all_ms[v].extend(ms)
            round_cpu_ms[v].append(statistics.median(cpu_ms))
            all_cpu_ms[v].extend(cpu_ms)
        print(f"round {r + 1}/{repeats}: " + " | ".join(f"{v} {round_ms[v][-1]:.1f}ms" for v in variants), flush=True)
    probes = {v: probe_memory(v) for v in variants}
except torch.OutOfMemoryError as e:
    die(f"out of memory: {one_line(e)} (lower batch_size or block_size)")

# ----------------------------------------------------------------------------- results
MB = 2 ** 20
ms_per_step = {v: statistics.median(all_ms[v]) for v in variants}
tokens_per_s = {v: tokens_per_step / (ms_per_step[v] / 1e3) for v in variants}


def paired_overhead(per_round):
    """Median over rounds of ms(variant) / ms(none) in the same round: both ran close in time, under about
    the same load, so the ratio is steadier than a ratio of overall medians."""
    return {v: statistics.median(a / b for a, b in zip(per_round[v], per_round['none']))
            for v in variants if v != 'none'}


overhead = paired_overhead(round_ms)
reg_saved_mb = {v: probes[v][0] / MB for v in variants if v != 'none'}
if device_type == 'cuda':  # measured: what this variant's own model, state and step need (the twin's excluded)
    peak_mem_mb = {v: (state_bytes(v) + peak_step_bytes[v]) / MB for v in variants}
else:  # estimated: parameters + AdamW state + gradients + what the forward saves for backward
    peak_mem_mb = {v: (state_bytes(v) + param_bytes(v) + probes[v][1]) / MB for v in variants}
results = {'tokens_per_s': tokens_per_s, 'overhead': overhead, 'peak_mem_mb': peak_mem_mb,
           'ms_per_step': ms_per_step, 'reg_saved_mb': reg_saved_mb,
           'round_ms': round_ms}  # the per-round medians, to judge the noise
if device_type == 'cpu':
    results['cpu_time'] = {'ms_per_step': {v: statistics.median(all_cpu_ms[v]) for v in variants},
                           'overhead': paired_overhead(round_cpu_ms), 'round_ms': round_cpu_ms}
ours = next((v for v in variants if v.partition(':')[0] == 'dispersion'), None)
if hf and ours:
    results['our_step_speedup'] = ms_per_step['hf'] / ms_per_step[ours]
if device_type == 'cuda':  # the model's FLOPs only: the regularizer's work counts as overhead, not as useful FLOPs
    gpu = torch.cuda.get_device_name()
    mfu = {v: raw_model.estimate_mfu(tokens_per_s[v], block_size, gpu) for v in variants}
    if None in mfu.values():
        print(f"note: no peak FLOPs known for '{gpu}': no MFU")
    else:
        results['mfu'] = mfu


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


results['config'] = config
results['machine'] = {
    'device': device, 'name': torch.cuda.get_device_name() if device_type == 'cuda' else cpu_name(),
    'torch': torch.__version__, 'cuda': torch.version.cuda, 'transformers': package_version('transformers'),
    'python': platform.python_version(), 'torch_threads': torch.get_num_threads(), 'cpu_count': os.cpu_count(),
    'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS'),
    'loadavg_start': load_start, 'loadavg_end': os.getloadavg() if hasattr(os, 'getloadavg') else None,
    'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
    'date': datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}

names = {'hf': 'hf (GPT2LMHeadModel + official)' if arch == 'gpt' else 'hf (Qwen3ForCausalLM + official)'}
cpu = results.get('cpu_time')
print(f"\n{'variant':<34}{'ms/step':>10}{'tokens/s':>11}{'overhead':>10}{'peak MB':>10}{'reg saved MB':>14}"
      + (f"{'MFU':>7}" if 'mfu' in results else '') + (f"{'CPU ms/step':>13}{'CPU overhead':>14}" if cpu else ''))
for v in variants:
    line = (f"{names.get(v, v):<34}{ms_per_step[v]:>10.1f}{tokens_per_s[v]:>11,.0f}"
            f"{overhead.get(v, 1.0):>9.3f}x{peak_mem_mb[v]:>10.0f}{reg_saved_mb.get(v, 0.0):>14.1f}")
    if 'mfu' in results:
        line += f"{100 * results['mfu'][v]:>6.1f}%"
    if cpu:
        line += f"{cpu['ms_per_step'][v]:>13.1f}{cpu['overhead'].get(v, 1.0):>13.3f}x"
    print(line)
load = ' -> '.join(f"{a[0]:.1f}" for a in (load_start, results['machine']['loadavg_end']) if a)
print(f"peak memory: {'measured (max_memory_allocated)' if device_type == 'cuda' else 'estimated'}; overhead = "
      f"median over rounds of ms(variant) / ms(none); 1-min load average {load or 'unknown'}")
if 'our_step_speedup' in results:
    print(f"our GPT + dispersion vs HF + official dispersion: {results['our_step_speedup']:.2f}x faster per step")

if json_path:
    try:
        atomic_write(json_path, jsonlib.dumps(results, indent=2), rescue=True)  # the timings are kept elsewhere
    except OSError as e:
        die(str(e))
    print(f"wrote {json_path}")
