"""
Benchmark (not a test): one plain training step of our GPT (model.py) beside nanoGPT's (its model.py, imported
from a checkout outside this repository), in one process: same shape, same weights, same batches, the same AdamW
(each model's own configure_optimizers, the two are the same), float32, eager. Also the step with the dispersion
loss on every block as train.py computes it (losses_tiled.hidden_reg_loss), on our hidden states and on nanoGPT's,
taken by forward hooks on its modules (its code is not edited). Results, commands and the machine's load: docs/bench.md.

    git clone https://github.com/karpathy/nanoGPT out/nanoGPT
    OMP_NUM_THREADS=2 python docs/nanogpt_bench.py --nanogpt=out/nanoGPT           # GPT 6x384, T=256, B=4, 10 rounds
    OMP_NUM_THREADS=1 python docs/nanogpt_bench.py --nanogpt=out/nanoGPT --rounds=20 --json=out/nanogpt_bench.json

A step: forward (next-token loss, + reg_coeff * dispersion of hidden states 1..n_layer in the '+disp' variants),
backward, gradient clipping, AdamW step, zero_grad. Each round draws one fresh batch that every variant trains on,
one step each, in an order that rotates from round to round; both models start from the same weights (ours,
loaded into nanoGPT's by name). The two differ in one function: GPT-2's GELU is the tanh form (Hugging Face's
'gelu_new', which our model keeps for parity), nanoGPT's is the exact erf form, so their losses differ slightly.
Reported: the median ms per step (wall and this process's CPU time) and the median over rounds of the per-round
ratio ours / nanoGPT.
"""

import contextlib
import importlib.util
import io
import json as jsonlib  # `json` is a config key (the output path)
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configurator import Choice, Range, configure, die  # noqa: E402  (needs ROOT on the path)

# -----------------------------------------------------------------------------
nanogpt = 'out/nanoGPT'  # a checkout of github.com/karpathy/nanoGPT (its model.py is imported from there)
n_layer: Range(min=1) = 6
n_head: Range(min=1) = 6
n_embd: Range(min=1) = 384
block_size: Range(min=1) = 256    # T
batch_size: Range(min=1) = 4      # B
vocab_size: Range(min=1) = 50257  # GPT-2's, unpadded on both sides
reg_coeff = 0.1          # the '+disp' variants: dispersion (tau 1, clamp 0.1) on hidden states 1..n_layer
disp: bool = True        # also time the '+disp' variants
grad_clip = 1.0          # as train.py's and nanoGPT's train.py default; 0 = off
rounds: Range(min=1) = 10  # timed rounds; one step of every variant per round
warmup: Range(min=0) = 2   # untimed rounds first (AdamW's state, the allocator)
seed = 1337
json = ''                # write the results to this JSON file ('' = no file)
gelu_rounds: Range(min=0) = 40  # then the two GELU forms alone, forward + backward on one MLP activation (B, T, 4 C)
nanogpt_gelu: Choice('erf', 'tanh') = 'erf'  # 'tanh': nanoGPT's GELU swapped, on its instances, for GPT-2's tanh
                         # form (ours), so both compute the same function: what is left of a gap is not the GELU
# -----------------------------------------------------------------------------
config = configure(globals())

if n_embd % n_head:
    die(f"n_embd={n_embd} is not divisible by n_head={n_head}", 2)
nanogpt_file = os.path.join(nanogpt, 'model.py')
if not os.path.isfile(nanogpt_file):
    die(f"nanogpt='{nanogpt}' has no model.py (git clone https://github.com/karpathy/nanoGPT {nanogpt})", 2)
if json and not os.path.isdir(os.path.dirname(os.path.abspath(json))):
    die(f"json='{json}': its folder does not exist", 2)

import torch  # noqa: E402
import losses_tiled  # noqa: E402
from model import build_model  # noqa: E402

spec = importlib.util.spec_from_file_location('nanogpt_model', nanogpt_file)  # not `model`: that name is ours
ng = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ng)
commit = subprocess.run(['git', '-C', nanogpt, 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True)
nanogpt_commit = commit.stdout.strip() or None

# ----------------------------------------------------------------------------- the models, all from the same weights
def nanogpt_hidden(model):
    """nanoGPT's hidden states without touching its code: forward hooks append the embedding (after dropout) and
    each block's output, and ln_f's output replaces the last one (after the final norm, as ours and HF's)."""
    hidden = []
    model.transformer.drop.register_forward_hook(lambda m, args, out: hidden.append(out))
    for block in model.transformer.h:
        block.register_forward_hook(lambda m, args, out: hidden.append(out))
    model.transformer.ln_f.register_forward_hook(lambda m, args, out: hidden.__setitem__(-1, out))
    return hidden


torch.manual_seed(seed)
weights = build_model('gpt', vocab_size, block_size, n_layer, n_head, n_embd).state_dict()
variants = ['ours', 'nanogpt'] + (['ours+disp', 'nanogpt+disp'] if disp else [])
models, optimizers, hidden_of = {}, {}, {}
for v in variants:  # one model and optimizer per variant: each trains on every batch once, in the same order
    with contextlib.redirect_stdout(io.StringIO()):  # nanoGPT prints its parameter count and optimizer groups
        if v.startswith('ours'):
            m = build_model('gpt', vocab_size, block_size, n_layer, n_head, n_embd)
        else:
            m = ng.GPT(ng.GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                                    n_embd=n_embd, dropout=0.0, bias=True))
            if nanogpt_gelu == 'tanh':  # on the instance: its code stays as it is
                for block in m.transformer.h:
                    block.mlp.gelu = torch.nn.GELU(approximate='tanh')
            hidden_of[v] = nanogpt_hidden(m)
        m.load_state_dict(weights)  # the same names (GPT-2's) on both sides
        models[v] = m.train()
        optimizers[v] = m.configure_optimizers(0.1, 6e-4, (0.9, 0.95), 'cpu')


def step(variant, x, y):
    """One training step; returns (wall, CPU) seconds and the next-token loss."""
    model, optimizer = models[variant], optimizers[variant]
    with_disp = variant.endswith('+disp')
    t0, c0 = time.perf_counter(), time.process_time()
    if variant.startswith('ours'):
        _, loss, *hidden = model(x, y, return_hidden=with_disp)
        hidden = hidden[0] if hidden else None
    else:
        hidden = hidden_of[variant]
        hidden.clear()
        _, loss = model(x, y)
    total = loss + reg_coeff * losses_tiled.hidden_reg_loss(hidden, 'dispersion', loc='all') if with_disp else loss
    total.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - t0, time.process_time() - c0, loss.item()


# ----------------------------------------------------------------------------- interleaved rounds
gen = torch.Generator().manual_seed(seed)
load_start = os.getloadavg()
print(f"ours vs nanoGPT ({nanogpt_commit or nanogpt}): GPT {n_layer}x{n_embd}, vocab {vocab_size}, B={batch_size} "
      f"T={block_size}, float32 eager, {torch.get_num_threads()} threads, {warmup} warm-up + {rounds} rounds, "
      f"load {' '.join(f'{a:.2f}' for a in load_start)}")
wall, cpu, loss_of = ({v: [] for v in variants} for _ in range(3))
for r in range(warmup + rounds):
    seq = torch.randint(vocab_size, (batch_size, block_size + 1), generator=gen)
    x, y = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
    k = r % len(variants)
    for v in variants[k:] + variants[:k]:  # rotate: no variant always goes first
        w, c, loss = step(v, x, y)
        loss_of[v].append(loss)
        if r >= warmup:
            wall[v].append(1e3 * w)
            cpu[v].append(1e3 * c)
    if r >= warmup:
        print(f"round {r - warmup + 1}/{rounds}: " + " | ".join(f"{v} {wall[v][-1]:.0f}ms" for v in variants),
              flush=True)
load_end = os.getloadavg()

# ----------------------------------------------------------------------------- results
ratio = lambda times, a, b: statistics.median(p / q for p, q in zip(times[a], times[b]))
pairs = [('ours', 'nanogpt')] + ([('ours+disp', 'nanogpt+disp'), ('ours+disp', 'ours')] if disp else [])
# the two models compute the same function up to the GELU form: their losses, step after step, show how close
loss_gap = {f'{a} - {b}': max(abs(p - q) for p, q in zip(loss_of[a], loss_of[b])) for a, b in pairs[:2]}
results = {'ms_per_step': {v: statistics.median(wall[v]) for v in variants},
           'cpu_ms_per_step': {v: statistics.median(cpu[v]) for v in variants},
           'ratio': {f'{a} / {b}': ratio(wall, a, b) for a, b in pairs},
           'cpu_ratio': {f'{a} / {b}': ratio(cpu, a, b) for a, b in pairs},
           'max_loss_gap': loss_gap, 'losses': loss_of, 'wall_ms': wall, 'cpu_ms': cpu, 'config': config,
           'machine': {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'cpu_count': os.cpu_count(),
                       'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS'), 'nanogpt_commit': nanogpt_commit,
                       'loadavg_start': load_start, 'loadavg_end': load_end}}
print(f"\n{'variant':<14}{'ms/step':>10}{'CPU ms/step':>13}")
for v in variants:
    print(f"{v:<14}{results['ms_per_step'][v]:>10.0f}{results['cpu_ms_per_step'][v]:>13.0f}")
for key in results['ratio']:
    print(f"{key}: {results['ratio'][key]:.3f}x wall, {results['cpu_ratio'][key]:.3f}x CPU time "
          f"(median over rounds of the per-round ratio)")
for key, gap in loss_gap.items():
    print(f"loss {key}, largest gap over all {warmup + rounds} steps: {gap:.2e}")


# ----------------------------------------------------------------------------- the GELU forms alone
def gelu_ms(approximate, h, grad):
    """CPU ms of one forward + backward of F.gelu on h."""
    c0 = time.process_time()
    torch.nn.functional.gelu(h, approximate=approximate).backward(grad)
    h.grad = None
    return 1e3 * (time.process_time() - c0)


if gelu_rounds:
    h = torch.randn(batch_size, block_size, 4 * n_embd, generator=gen).requires_grad_()
    grad = torch.randn(h.shape, generator=gen)
    gelu = {'tanh': [], 'none': []}  # 'none' is the exact erf form
    for r in range(gelu_rounds):
        for a in (['tanh', 'none'] if r % 2 else ['none', 'tanh']):
            gelu[a].append(gelu_ms(a, h, grad))
    gelu = {a: statistics.median(t) for a, t in gelu.items()}
    results['gelu_cpu_ms_per_step'] = {'tanh': n_layer * gelu['tanh'], 'erf': n_layer * gelu['none']}
    print(f"GELU forward + backward, CPU ms per step ({n_layer} x {tuple(h.shape)}): tanh (GPT-2's, ours) "
          f"{n_layer * gelu['tanh']:.1f}, erf (nanoGPT's) {n_layer * gelu['none']:.1f}: "
          f"{n_layer * (gelu['tanh'] - gelu['none']) / results['cpu_ms_per_step']['ours']:.2%} of our step's CPU time")
load_end = os.getloadavg()
results['machine']['loadavg_end'] = load_end
print(f"1-min load average {load_start[0]:.2f} -> {load_end[0]:.2f}")
if json:
    with open(json, 'w') as f:
        jsonlib.dump(results, f, indent=1)
    print(f"wrote {json}")
