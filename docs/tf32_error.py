"""
How far TF32 moves the dispersion loss, emulated on the CPU against float64.

    python docs/tf32_error.py        # ~1 minute on one core

On CUDA, train.py allows TF32 (torch.backends.cuda.matmul.allow_tf32 = True) for speed, and the regularizer's
cosine matmuls run in it: tensor cores read float32 inputs rounded to TF32's 10 explicit mantissa bits and
accumulate in float32. Here every matmul of the loss (the cosine matrix forward, and the two products of its
backward) reads its inputs rounded to TF32 the same way (round to nearest even) and computes in float64; the
result is compared with the loss and gradient in exact float64, on hidden states [8, 256, 768] (GPT-2 small's
width) whose mean pairwise cosine is 0, 0.2 and 0.7 (condensed). The float32 accumulation is not emulated: over
768 terms it adds ~1e-6 relative, far below the rounding of the inputs. The numbers are quoted in losses.py.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import losses  # noqa: E402


def to_tf32(x):
    """float64 -> float32 -> rounded to TF32 (the low 13 of float32's 23 mantissa bits cleared, nearest even)."""
    i = x.float().contiguous().view(torch.int32)
    i = (i + 0x0FFF + ((i >> 13) & 1)) & ~0x1FFF
    return i.view(torch.float32).double()


class TF32Gram(torch.autograd.Function):
    """x x^T per sequence with TF32-rounded inputs, forward and backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        xr = to_tf32(x)
        return torch.bmm(xr, xr.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        gr, xr = to_tf32(g), to_tf32(x)
        return torch.bmm(gr, xr) + torch.bmm(gr.transpose(1, 2), xr)


def dispersion(z, gram, tau=1.0, clamp=0.1):
    """losses.dispersion's formula, with the cosine matmul given."""
    zhat = z / z.norm(dim=-1, keepdim=True)
    c = gram(zhat)
    c = c + (c.clamp(-1 + clamp, 1 - clamp) - c).detach()
    return losses.log_mean_exp(-torch.arccos(c) / (math.pi * tau), off_diagonal=True)


if __name__ == '__main__':
    torch.manual_seed(0)
    T = 256
    print(f"dispersion loss, [8, {T}, 768], TF32 (emulated) vs float64:")
    for offset in (0.0, 0.5, 1.5):
        z = torch.randn(8, T, 768, dtype=torch.float64) + offset  # a shared offset condenses the tokens
        values, grads = [], []
        for gram in (lambda x: torch.bmm(x, x.transpose(1, 2)), TF32Gram.apply):
            zz = z.clone().requires_grad_()
            value = dispersion(zz, gram)
            value.backward()
            values.append(value.item())
            grads.append(zz.grad)
        zhat = z / z.norm(dim=-1, keepdim=True)
        mean_cos = torch.bmm(zhat, zhat.transpose(1, 2))[:, ~torch.eye(T, dtype=torch.bool)].mean().item()
        print(f"  mean cosine {mean_cos:.2f}: value {values[0]:+.6f}, relative error {abs(values[1] - values[0]) / abs(values[0]):.1e}"
              f" | gradient error {((grads[1] - grads[0]).abs().max() / grads[0].abs().max()).item():.1e} of its largest entry")
