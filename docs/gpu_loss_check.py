"""
The fast path of the losses on a GPU (losses_tiled.py, fused by torch.compile as train.py runs it there) against
the same tiles eager: same values and gradients; then the time of the loss alone, forward + backward, on GPT-2
small's hidden states, fused vs eager tiles.

    python docs/gpu_loss_check.py          # one CUDA GPU, about a minute (most of it compiling)
    python docs/gpu_loss_check.py --check  # only the equality checks

Part of docs/gpu_bench.sh; the numbers are in docs/bench.md.
"""
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import losses  # noqa: E402
import losses_tiled  # noqa: E402

assert torch.cuda.is_available(), "needs a CUDA GPU"
torch.backends.cuda.matmul.allow_tf32 = True  # as train.py and bench.py
dev = 'cuda'


def value_and_grad(name, z, fuse, **kw):
    z = z.detach().clone().requires_grad_()
    value = losses_tiled.hidden_reg_loss([z, z], name, loc='last', impl='tiled', fuse=fuse, **kw)  # the tiles on z
    value.backward()
    return value.detach(), z.grad


def check(name, z, kw):
    v0, g0 = value_and_grad(name, z, False, **kw)
    torch._dynamo.reset()  # a run uses one loss: cycling through all of them would reach the recompile limit
    v1, g1 = value_and_grad(name, z, True, **kw)
    if any(v is False for v in losses_tiled._compiled.values()):
        raise SystemExit(f"compiling failed for {name}: {losses_tiled._compiled}")
    dv = (v1 - v0).abs().item()
    dg = ((g1 - g0).abs().max() / g0.abs().max()).item()
    print(f"  {name:18s} {tuple(z.shape)} value {v0.item():+.6f} | fused - eager: value {dv:.1e}, "
          f"grad {dg:.1e} of its max")
    assert dv <= 1e-5 * max(1.0, abs(v0.item())) and dg <= 1e-4, (name, dv, dg)


print("fused vs eager, float32 hidden states (the same TF32 matmuls in both):")
g = torch.Generator(device=dev).manual_seed(0)
z = torch.randn(48, 256, 768, device=dev, generator=g) + 0.3  # a shared offset: condensed-ish, cosines > 0
kws = {'dispersion': {'tau': 1.0, 'clamp': 0.1}, 'orthogonalization': {'clamp': 0.1}, 'infonce_cos': {'tau': 1.0},
       'decorrelation': {}, 'l2_repel': {'tau': 1.0}}
for name, kw in kws.items():
    check(name, z, kw)  # W kept from forward (48 x 256^2 entries: one tile)
keep, tile = losses_tiled._KEEP_ENTRIES, losses_tiled._TILE_ENTRIES['cuda']
losses_tiled._KEEP_ENTRIES, losses_tiled._TILE_ENTRIES['cuda'] = 0, 100 * 256  # tiles of 100 rows: r0 = 0, 100, 200
for name, kw in kws.items():
    check(name, z[:5], kw)
losses_tiled._KEEP_ENTRIES, losses_tiled._TILE_ENTRIES['cuda'] = keep, tile
if '--check' in sys.argv:
    sys.exit(0)


def time_loss(hidden, max_tokens, fused, n=20):
    """Median ms of hidden_reg_loss forward + backward over 12 layers, as train.py calls it."""
    gen = torch.Generator(device=dev).manual_seed(1)
    times = []
    for i in range(n + 3):
        h = [t.detach().requires_grad_() for t in hidden]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        loss = losses_tiled.hidden_reg_loss(h, 'dispersion', loc='all', tau=1.0, clamp=0.1, max_tokens=max_tokens,
                                            generator=gen, impl='tiled', fuse=fused)
        loss.backward()
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    return statistics.median(times)


print("\nthe loss alone, forward + backward: 12 layers of [16, 1024, 768] bfloat16 hidden states (GPT-2 small, "
      "B=16, T=1024), median of 20")
hidden = [torch.randn(16, 1024, 768, device=dev, generator=g, dtype=torch.bfloat16) + 0.3 for _ in range(13)]
for max_tokens in (None, 256):
    eager = time_loss(hidden, max_tokens, fused=False)
    fused = time_loss(hidden, max_tokens, fused=True)
    eager2 = time_loss(hidden, max_tokens, fused=False)  # again: no drift between the two
    print(f"  max_tokens={max_tokens}: eager {eager:.2f} / {eager2:.2f} ms, fused {fused:.2f} ms "
          f"({min(eager, eager2) / fused:.2f}x)")
