"""
The accelerator for losses.py: the same regularizers, computed tile by tile over the [B, T, T] pair matrix with
a hand-written backward, and hidden_reg_loss, the entry point train.py calls, which chooses between the two.
losses.py is the definition and imports nothing of ours; every function here is tested equal to it (values and
gradients, float64, on each of the paths below) in tests/test_losses.py.

    python -m pytest -q tests/test_losses.py

Why: autograd through the formulas keeps several [B, T, T] tensors alive until backward and runs a dozen
elementwise passes over them. Here the gradient is written out by hand, so:
- up to _KEEP_ENTRIES pair entries (6 layers x 1 sequence x 1,600 tokens), forward computes the loss's weights
  W = dL/d(pair) at once and keeps only them for backward ("kept");
- beyond that, forward keeps the tokens and one log-sum per sequence, and backward recomputes the pairs tile by
  tile ("recomputed", "tiled"), so memory grows with B*T*d, not B*T^2;
- with fuse=True each tile's elementwise chain is one or two kernels made by torch.compile (train.py asks for it
  on CUDA), so the loss costs little more than its matmuls.
When it pays: the loss alone is 1.7-3.7x faster here than the definition at every size measured, but a training
step notices only from about 512 tokens per sequence. Measured on CPU: 1 thread, forward + backward of 6 layers x
384 features, B x T = 1,024, against a 4.2 s step. The saving is 0.3% of the step at the paper's 256 of 1,024
tokens, 1-1.5% at T = 16 to 256, 3% at 512 and 6.6% at 1,024 (dispersion 449 -> 169 ms, 67 -> 33 MB kept for
backward). So hidden_reg_loss's impl='auto' (choose_impl) runs the definition below AUTO_MIN_TOKENS and this file
from there up. Before this file runs at all, fast_path_mismatch checks that it still equals the definition on a
small input. An edited formula in losses.py that this file does not follow then trains as written under 'auto',
with a note, and impl='tiled' refuses it. docs/bench.md has the numbers.
On CUDA the threshold is the CPU's, not measured against the definition there; memory points the same way: the
reference keeps several float32 [B, T, T] tensors for backward (0.8 GB each for GPT-2 small's 12 layers x 16 x
1024^2 pairs), the tiled path at most one.
A loss with no entry in TILED runs its definition. Each function takes the definition's arguments (all of them:
hidden_reg_loss fills in the definition's defaults) plus fuse.
"""
import math
import warnings

import torch

import losses


def dispersion(z, tau, clamp, fuse=False):
    _check(tau=tau, clamp=clamp)
    return _apply(_CosinePairLoss, z, 'dispersion', float(tau), float(clamp), 0.0, fuse)


def orthogonalization(z, margin, clamp, fuse=False):
    _check(clamp=clamp)
    return _apply(_CosinePairLoss, z, 'orthogonalization', 1.0, float(clamp), float(margin), fuse)


def infonce_cos(z, tau, fuse=False):
    _check(tau=tau)
    return _apply(_CosinePairLoss, z, 'infonce_cos', float(tau), 0.0, 0.0, fuse)


def decorrelation(z, fuse=False):
    # C_ij is the cosine of the two tokens once each is centered over its features (the std and d - 1 cancel)
    z = losses.float_tokens(z)
    if z.shape[-1] < 2:
        raise ValueError(f"decorrelation needs at least 2 features, got d={z.shape[-1]}")
    return _apply(_CosinePairLoss, z - z.mean(dim=-1, keepdim=True), 'decorrelation', 1.0, 0.0, 0.0, fuse)


def l2_repel(z, tau, norm_coeff, off_diagonal, fuse=False):
    _check(tau=tau)
    if off_diagonal:  # the paper's i != j form is not tiled: its definition
        return losses.l2_repel(z, tau, norm_coeff, off_diagonal)
    z = losses.float_tokens(z)
    # centered for the Gram trick, as in losses.l2_repel
    return _apply(_L2PairLoss, z - z.mean(dim=1, keepdim=True), float(tau), fuse) + norm_coeff * z.square().mean()


TILED = {'dispersion': dispersion, 'orthogonalization': orthogonalization, 'l2_repel': l2_repel,
         'decorrelation': decorrelation, 'infonce_cos': infonce_cos}

# -----------------------------------------------------------------------------
# which one runs: the entry point train.py calls, the rule, and the start-up check

IMPLS = ('auto', 'reference', 'tiled')
# reg_impl='auto' takes the fast path from this many tokens per sequence up (T, or max_tokens when the loss
# subsamples), the definition below it. Measured on CPU (docs/bench.md, "When the fast path pays"); CUDA keeps the
# CPU's rule: unmeasured there against the definition (docs/gpu/ times the fast path, not losses.py)
AUTO_MIN_TOKENS = {'cpu': 512, 'cuda': 512}


def hidden_reg_loss(hidden, name, loc='all', max_tokens=None, generator=None, impl='auto', fuse=False, **options):
    """losses.hidden_reg_loss (same arguments, same value and gradient) run by the implementation choose_impl
    picks: 'reference' the definition in losses.py, 'tiled' this file's version, 'auto' the fast path where it pays.
    A loss with no version here runs its definition whatever impl says. fuse=True compiles the tiles."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; expected one of {', '.join(IMPLS)}")
    z, kwargs = losses.reg_inputs(hidden, name, loc, max_tokens, generator, **options)
    chosen, note = choose_impl(name, impl, z.shape[1], z.device.type, **kwargs)
    if note:
        warnings.warn(note, stacklevel=2)  # once per caller, as warnings go; train.py prints it at start-up
    if chosen == 'tiled':
        return TILED[name](z, **kwargs, fuse=fuse)
    return losses.reg_loss(name, z, **kwargs)


def choose_impl(name, impl, tokens, device_type, **options):
    """(what runs, note) for the loss `name` on `tokens` tokens per sequence on device_type ('cpu', 'cuda').
    'reference', or no version here: the definition. 'auto': the fast path from AUTO_MIN_TOKENS up, if it still
    equals the definition (fast_path_mismatch), else the definition and a note saying why. 'tiled': the fast path;
    ValueError if it no longer equals the definition. options: the loss's, as hidden_reg_loss takes them."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; expected one of {', '.join(IMPLS)}")
    if impl == 'reference' or name not in TILED:
        return 'reference', None
    if impl == 'auto' and tokens < AUTO_MIN_TOKENS.get(device_type, AUTO_MIN_TOKENS['cpu']):
        return 'reference', None
    mismatch = fast_path_mismatch(name, **options)
    if mismatch is None:
        return 'tiled', None
    if impl == 'tiled':
        raise ValueError(f"reg_impl='tiled' runs losses_tiled.{name}, which no longer equals the definition "
                         f"losses.{name} ({mismatch}): update losses_tiled.py, or train the definition with "
                         f"reg_impl='reference' or 'auto'")
    return 'reference', (f"note: reg_impl='auto' trains losses.py's {name} as written, not the fast path: "
                         f"losses_tiled.{name} no longer equals it ({mismatch})")


_checked = {}  # (name, options, definition, fast version) -> fast_path_mismatch's answer


def fast_path_mismatch(name, **options):
    """None if the fast version of `name` equals its definition in losses.py, value and gradient, in float64 on a
    small random input with the clamp at work (a few ms, once per process and options); else what differs, in a few
    words. It catches an edited formula in losses.py that this file was not updated for (a change confined to
    sizes or options this input does not reach escapes it: tests/test_losses.py checks every path)."""
    probe = torch.randn(2, 9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    probe[:, 1] = 2 * probe[:, 0] + 1e-3 * probe[:, 3]  # a near-duplicate and a near-antipode of token 0
    probe[:, 2] = -0.5 * probe[:, 0] + 1e-3 * probe[:, 4]
    z, kwargs = losses.reg_inputs([probe, probe], name, loc='last', **options)
    key = (name, repr(sorted(kwargs.items())), losses.REGULARIZERS[name], TILED[name])
    if key not in _checked:
        # our own saved-tensor hooks: a caller's (a memory probe, offloading) neither sees nor changes the check
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t):
            _checked[key] = _compare(name, z, kwargs)
    return _checked[key]


def _one_line(e):
    """An exception as 'Type: first line of its message' (this file imports nothing of ours but losses.py)."""
    first = (str(e).strip().splitlines() or [''])[0].strip()
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _compare(name, z, kwargs):
    z = z.detach().requires_grad_()
    want = losses.reg_loss(name, z, **kwargs)
    (want_grad,) = torch.autograd.grad(want, z)
    try:
        got = TILED[name](z, **kwargs)
        (got_grad,) = torch.autograd.grad(got, z)
    except Exception as e:  # noqa: BLE001 (a new option or formula the fast version does not know)
        return f"it raises {_one_line(e)}"
    if not torch.allclose(got, want, rtol=1e-9, atol=1e-12):
        return f"value {got.item():.10g}, the definition's {want.item():.10g}"
    scale = want_grad.abs().max().item()
    err = (got_grad - want_grad).abs().max().item()
    if not err <= 1e-8 * scale + 1e-12:
        return f"gradient off by {err:.2g}, its largest entry {scale:.2g}"
    return None


def _check(tau=1.0, clamp=0.5):
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau!r}")
    if not 0 < clamp < 1:  # clamp = 0 lets arccos' reach infinity at coinciding tokens
        raise ValueError(f"clamp must be in (0, 1), got {clamp!r}")


def _apply(function, z, *args):
    """function.apply on z in float32 (float64 stays float64), with autocast off."""
    z = losses.float_tokens(z)
    with torch.autocast(device_type=z.device.type, enabled=False):
        return function.apply(z, *args)


# -----------------------------------------------------------------------------
# the tiles of the [B, T, T] pair matrix, and what each loss computes on a tile of cosines

# how many entries of the [B, T, T] pair matrix are processed at once: 16 MiB of float32 on CPU, 256 MiB on
# GPU (fewer, larger kernels: 1.2-1.9x faster at T >= 1024 on an H200); other devices use the CPU size
_TILE_ENTRIES = {'cpu': 2 ** 22, 'cuda': 2 ** 26}
_KEEP_ENTRIES = 2 ** 24     # up to this many entries (64 MiB of float32) forward computes W in one tile and keeps
                            # it for backward: recomputing it costs a third more time (a matmul and every pass again)


def _tiles(B, T, device):
    """Tiles (b0, b1, r0, r1) of the [B, T, T] pair matrix with at most _TILE_ENTRIES entries each
    (whole sequences when they fit, else slabs of rows), so memory grows with B*T, not B*T^2."""
    if B * T * T <= _KEEP_ENTRIES:  # small enough to keep for backward: one tile, whatever the tile budget
        yield 0, B, 0, T
        return
    budget = _TILE_ENTRIES.get(device.type, _TILE_ENTRIES['cpu'])
    nb = max(1, min(B, budget // (T * T)))
    nr = max(1, min(T, budget // (nb * T)))
    for b0 in range(0, B, nb):
        for r0 in range(0, T, nr):
            yield b0, min(b0 + nb, B), r0, min(r0 + nr, T)


def _pair_terms(c, r0, kind, tau, clamp, margin):
    """A tile c of cosines (rows r0.. of some sequences; consumed in place) -> (t, ct, m).
    dispersion, infonce_cos: t = exp(x - m), x the logits, m (b, 1, 1) the log-sum-exp shift: the logits'
    upper bound when exp cannot underflow below it, else their max per sequence over the tile; orthogonalization:
    t = max(0, margin - D), m = None; decorrelation: t = c, m = None (both with a zero diagonal). ct: the
    clamped cosines (None where there is no arccos)."""
    if kind == 'decorrelation':  # t = c itself, squared later; no clamp, no arccos
        c.diagonal(offset=r0, dim1=1, dim2=2).fill_(0)
        return c, None, None
    if kind == 'infonce_cos':
        x, ct = c.mul_(1 / tau), None  # all pairs, the diagonal included
    else:
        ct = c.clamp_(-1 + clamp, 1 - clamp)
        angle = torch.arccos(ct)  # pi * D
        if kind == 'orthogonalization':
            t = angle.mul_(-1 / math.pi).add_(margin).clamp_min_(0)
            t.diagonal(offset=r0, dim1=1, dim2=2).fill_(0)  # i = j is not a pair
            return t, ct, None
        x = angle.mul_(-1 / (math.pi * tau))
        x.diagonal(offset=r0, dim1=1, dim2=2).fill_(-math.inf)
    # the logits are bounded, dispersion's to [-1/tau, 0] and infonce_cos's to [-1/tau, 1/tau]: shifting by the
    # upper bound instead of the max spares two passes over the tile, and while the span is < 80, exp stays in
    # float32's normal range (no denormals, which are slow on CPU)
    top, span = (0.0, 1 / tau) if kind == 'dispersion' else (1 / tau, 2 / tau)
    if span < 80:
        return (x.sub_(top) if top else x).exp_(), ct, x.new_full((x.shape[0], 1, 1), top)
    m = x.amax(dim=(1, 2), keepdim=True)
    return x.sub_(m).exp_(), ct, m


def _pair_weights(t, ct, m, lse, kind, tau, T):
    """W = d(sum_b loss_b)/dc on the tile `_pair_terms` made (t and ct consumed in place), returned as
    (w, s) with W = s * w and s a factor per sequence (b, 1, 1), applied later on the small [B, T, 1]
    side. lse is the per-sequence log-sum (b, 1, 1): exp(x - lse) = t * exp(m - lse) is the softmax
    over all pairs. Straight-through clamp: arccos' is evaluated at the clamped ct, nothing is zeroed."""
    if kind == 'infonce_cos':  # softmax / tau
        return t, torch.exp(m - lse) / tau
    if kind == 'decorrelation':  # 2 c / #pairs
        return t, torch.full_like(t[:, :1, :1], 2 / (T * (T - 1)))
    one_minus_sq = torch.addcmul(ct.new_ones(()), ct, ct, value=-1, out=ct)
    w = t.mul_(one_minus_sq.rsqrt_())  # -arccos'(ct) = 1 / sqrt(1 - ct^2)
    if kind == 'dispersion':  # softmax / (pi tau sqrt(1 - ct^2))
        return w, torch.exp(m - lse) / (math.pi * tau)
    # orthogonalization: 2 max(0, margin - D) / (pi sqrt(1 - ct^2)) / #pairs
    return w, torch.full_like(t[:, :1, :1], 2 / (math.pi * T * (T - 1)))


_MEAN_OF_SQUARES = ('orthogonalization', 'decorrelation')  # loss_b = mean_{i!=j} t_ij^2; the others: a log-sum


def _row_stat(t, m, kind):
    """Per row i of a tile: log sum_j exp(x_ij) from t = exp(x - m), or sum_j t_ij^2."""
    return t.square().sum(dim=2) if kind in _MEAN_OF_SQUARES else t.sum(dim=2).log_().add_(m.flatten(1))


def _tile_row_stat(c, r0, kind, tau, clamp, margin):
    """Forward on one tile: its rows' statistic. c is consumed in place."""
    t, _, m = _pair_terms(c, r0, kind, tau, clamp, margin)
    return _row_stat(t, m, kind)


def _log_sums(row_stat, kind):
    """Per sequence, log of the sum over all pairs (B, 1, 1); None for a mean of squares."""
    return None if kind in _MEAN_OF_SQUARES else torch.logsumexp(row_stat, dim=1)[:, None, None]


def _whole_tile(c, kind, tau, clamp, margin):
    """Forward when the whole [B, T, T] matrix is one tile small enough to keep: (row_stat, w, s), W = s * w
    being dL/dc for backward. c is consumed in place."""
    t, ct, m = _pair_terms(c, 0, kind, tau, clamp, margin)
    row_stat = _row_stat(t, m, kind)  # before _pair_weights, which consumes t
    w, s = _pair_weights(t, ct, m, _log_sums(row_stat, kind), kind, tau, c.shape[-1])
    return row_stat, w, s


def _tile_weights(c, r0, lse, kind, tau, clamp, margin):
    """Backward on one tile: (w, s) with W = s * w, from the cosines recomputed there. c is consumed in place."""
    t, ct, m = _pair_terms(c, r0, kind, tau, clamp, margin)
    return _pair_weights(t, ct, m, lse, kind, tau, c.shape[-1])


# l2-repel's tiles: squared distances from the Gram matrix of the (centered) tokens

_L2_FLOOR = -60.0  # logits below -60 are floored there: far pairs would otherwise give denormal floats,
                   # 10-100x slower on CPU (in backward's matmul too), for a change < T^2 e^-60 to a sum >= T


def _l2_terms(g, sq_rows, sq, r0, tau):
    """One tile of Gram entries g = u_rows u^T (b, rows, T; consumed in place) -> t = exp(max(x, -60)), with the
    logits x_ij = -||u_i - u_j||^2 / tau <= 0 and x_ii = 0 exactly: no log-sum-exp shift is needed, since every
    row's sum is at least its diagonal term, 1."""
    x = g.mul_(2).sub_(sq_rows[:, :, None]).sub_(sq[:, None, :]).clamp_max_(0).mul_(1 / tau)
    x.diagonal(offset=r0, dim1=1, dim2=2).fill_(0)
    return x.clamp_min_(_L2_FLOOR).exp_()


def _l2_tile_row_sums(g, sq_rows, sq, r0, tau):
    """Forward on one tile: sum_j exp(x_ij) per row."""
    return _l2_terms(g, sq_rows, sq, r0, tau).sum(dim=2)


def _l2_tile_weights(g, sq_rows, sq, r0, total, tau):
    """Backward on one tile: (P, r), P_ij = exp(x_ij) / total_b = d log(total_b) / d x_ij, r its row sums."""
    w = _l2_terms(g, sq_rows, sq, r0, tau).div_(total)
    return w, w.sum(dim=2, keepdim=True)


def _l2_whole_tile(g, sq, tau):
    """Forward when the whole [B, T, T] matrix is one tile small enough to keep: (row_sums, P, r)."""
    t = _l2_terms(g, sq, sq, 0, tau)
    row_sums = t.sum(dim=2)
    w = t.div_(row_sums.sum(dim=1)[:, None, None])
    return row_sums, w, w.sum(dim=2, keepdim=True)


# -----------------------------------------------------------------------------
# fuse=True: each tile's elementwise chain (clamp, arccos, exp, the row sums, the weights) runs as one or two
# kernels made by torch.compile, instead of a dozen passes over the tile in eager mode. The fused versions work
# on a copy of the tile, which inductor never materializes, so the eager helpers above stay the single
# definition of the math (and the input is left intact for the eager fallback). If compiling fails (no Triton,
# say), the loss warns once and runs eagerly. (One wrapper per helper, not one generic wrapper: dynamo's
# recompile limit counts per function.)

def _fused_whole_tile(c, *args):
    return _whole_tile(c.clone(), *args)


def _fused_tile_row_stat(c, *args):
    return _tile_row_stat(c.clone(), *args)


def _fused_tile_weights(c, *args):
    return _tile_weights(c.clone(), *args)


def _fused_l2_whole_tile(g, *args):
    return _l2_whole_tile(g.clone(), *args)


def _fused_l2_tile_row_sums(g, *args):
    return _l2_tile_row_sums(g.clone(), *args)


def _fused_l2_tile_weights(g, *args):
    return _l2_tile_weights(g.clone(), *args)


_FUSED = {_whole_tile: _fused_whole_tile, _tile_row_stat: _fused_tile_row_stat, _tile_weights: _fused_tile_weights,
          _l2_whole_tile: _fused_l2_whole_tile, _l2_tile_row_sums: _fused_l2_tile_row_sums,
          _l2_tile_weights: _fused_l2_tile_weights}
_compiled = {}  # eager helper -> its compiled fused version, or False once compiling it failed


def _run(fuse, fn, c, *args):
    """fn(c, *args); with fuse, its compiled fused version instead."""
    if not fuse or _compiled.get(fn) is False:
        return fn(c, *args)
    if fn not in _compiled:  # dynamic shapes: other tile sizes and diagonal offsets share a graph (0 and 1 get
                             # their own: dynamo specializes them), and a run uses one loss
        _compiled[fn] = torch.compile(_FUSED[fn], dynamic=True)
    try:
        return _compiled[fn](c, *args)
    except torch.OutOfMemoryError:
        raise  # not the compiler's fault: eager would need the memory too
    except Exception as e:  # noqa: BLE001 (any compiler failure: the eager path computes the same)
        warnings.warn(f"losses_tiled.py: torch.compile of {fn.__name__} failed ({_one_line(e)}); "
                      f"running it eagerly")
        _compiled[fn] = False
        return fn(c, *args)


# -----------------------------------------------------------------------------
# the hand-written autograd functions

class _CosinePairLoss(torch.autograd.Function):
    """mean_b loss_b of one of four losses of the within-sequence cosine matrix c = zhat zhat^T:

        'dispersion'         loss_b = log mean_{i!=j} exp(-arccos(ct_ij) / (pi tau))
        'orthogonalization'  loss_b = mean_{i!=j} max(0, margin - arccos(ct_ij) / pi)^2
        'infonce_cos'        loss_b = log mean_{i,j} exp(c_ij / tau)
        'decorrelation'      loss_b = mean_{i!=j} c_ij^2      (z centered over features first: c = correlation)

    ct = c clamped to [-1+clamp, 1-clamp] with the straight-through trick: the value uses ct, the
    gradient flows as if there were no clamp, with arccos' evaluated at ct (so finite at c = +-1).

    Every loss is a sum over symmetric pairs, so W = dL/dc is symmetric and dL/dzhat = (W + W^T) zhat =
    2 W zhat; then through zhat = z / ||z||, dL/dz = (g - zhat <zhat, g>) / ||z||. W is kept from forward up to
    _KEEP_ENTRIES; beyond that forward keeps only zhat, the norms and the per-sequence log-sums, and backward
    recomputes c tile by tile.
    """

    @staticmethod
    def forward(ctx, z, kind, tau, clamp, margin, fuse):
        B, T, _ = z.shape
        norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)  # (B, T, 1)
        zhat = z / norm.clamp_min(losses._NORM_FLOOR)  # a floor for the zero vector only, not an eps on every norm
        weights = weight_scale = None
        tiles = list(_tiles(B, T, z.device))
        if len(tiles) == 1 and B * T * T <= _KEEP_ENTRIES and ctx.needs_input_grad[0]:
            c = torch.bmm(zhat, zhat.transpose(1, 2))
            row_stat, weights, weight_scale = _run(fuse, _whole_tile, c, kind, tau, clamp, margin)
        else:
            row_stat = z.new_empty(B, T)
            for b0, b1, r0, r1 in tiles:
                c = torch.bmm(zhat[b0:b1, r0:r1], zhat[b0:b1].transpose(1, 2))  # (b, rows, T)
                row_stat[b0:b1, r0:r1] = _run(fuse, _tile_row_stat, c, r0, kind, tau, clamp, margin)
        lse = _log_sums(row_stat, kind)
        if kind in _MEAN_OF_SQUARES:
            per_seq = row_stat.sum(dim=1) / (T * (T - 1))
        else:  # log mean = log sum - log(#pairs): the paper's log-sum less a constant, so the same gradients
            per_seq = lse.flatten() - math.log(T * T if kind == 'infonce_cos' else T * (T - 1))
        ctx.save_for_backward(zhat, norm, lse, weights, weight_scale)
        ctx.kind, ctx.tau, ctx.clamp, ctx.margin, ctx.fuse = kind, tau, clamp, margin, fuse
        return per_seq.mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        zhat, norm, lse, weights, weight_scale = ctx.saved_tensors
        B, T, _ = zhat.shape
        with torch.autocast(device_type=zhat.device.type, enabled=False):
            if weights is not None:
                grad_zhat = torch.bmm(weights, zhat)
                row_scale = weight_scale  # (B, 1, 1)
            else:
                grad_zhat = torch.empty_like(zhat)
                row_scale = zhat.new_empty(B, T, 1)
                for b0, b1, r0, r1 in _tiles(B, T, zhat.device):  # the same tiles as forward: same values
                    c = torch.bmm(zhat[b0:b1, r0:r1], zhat[b0:b1].transpose(1, 2))
                    w, s = _run(ctx.fuse, _tile_weights, c, r0, None if lse is None else lse[b0:b1], ctx.kind,
                                ctx.tau, ctx.clamp, ctx.margin)
                    torch.bmm(w, zhat[b0:b1], out=grad_zhat[b0:b1, r0:r1])
                    row_scale[b0:b1, r0:r1] = s
            # back through the normalization; a zero token has no direction and gets no gradient.
            # 2/B: the two halves of (W + W^T), and the mean over the batch
            radial = torch.einsum('btd,btd->bt', zhat, grad_zhat).unsqueeze(-1)  # <zhat, g>, (B, T, 1)
            floor = losses._NORM_FLOOR
            inv_norm = norm.clamp_min(floor).reciprocal_().mul_(norm >= floor)
            grad_z = grad_zhat.addcmul_(zhat, radial, value=-1).mul_(inv_norm * row_scale * (grad_out * (2.0 / B)))
        return grad_z, None, None, None, None, None


class _L2PairLoss(torch.autograd.Function):
    """mean_b of loss_b = log mean_{i,j} exp(-||u_i - u_j||^2 / tau) over all T^2 pairs, u [B, T, d], tiled as
    _CosinePairLoss.

    With P the softmax over the pairs of a sequence (symmetric) and r_i = sum_j P_ij, the gradient is
    d loss_b / d u_i = -(4 / tau) (r_i u_i - (P u)_i): one matmul per tile, P kept from forward when the whole
    matrix is small (_KEEP_ENTRIES), else recomputed tile by tile in backward.
    """

    @staticmethod
    def forward(ctx, u, tau, fuse):
        B, T, _ = u.shape
        sq = u.square().sum(dim=-1)  # (B, T)
        weights = row_sums_p = None
        tiles = list(_tiles(B, T, u.device))
        if len(tiles) == 1 and B * T * T <= _KEEP_ENTRIES and ctx.needs_input_grad[0]:
            row_sums, weights, row_sums_p = _run(fuse, _l2_whole_tile, torch.bmm(u, u.transpose(1, 2)), sq, tau)
        else:
            row_sums = u.new_empty(B, T)
            for b0, b1, r0, r1 in tiles:
                g = torch.bmm(u[b0:b1, r0:r1], u[b0:b1].transpose(1, 2))
                row_sums[b0:b1, r0:r1] = _run(fuse, _l2_tile_row_sums, g, sq[b0:b1, r0:r1], sq[b0:b1], r0, tau)
        total = row_sums.sum(dim=1)[:, None, None]  # (B, 1, 1), >= T: the diagonal's exp(0) = 1 each
        ctx.save_for_backward(u, sq, total, weights, row_sums_p)
        ctx.tau, ctx.fuse = tau, fuse
        return (total.flatten().log() - math.log(T * T)).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        u, sq, total, weights, row_sums_p = ctx.saved_tensors
        B, T, _ = u.shape
        with torch.autocast(device_type=u.device.type, enabled=False):
            if weights is not None:
                pu = torch.bmm(weights, u)
            else:
                pu, row_sums_p = torch.empty_like(u), u.new_empty(B, T, 1)
                for b0, b1, r0, r1 in _tiles(B, T, u.device):
                    g = torch.bmm(u[b0:b1, r0:r1], u[b0:b1].transpose(1, 2))
                    w, r = _run(ctx.fuse, _l2_tile_weights, g, sq[b0:b1, r0:r1], sq[b0:b1], r0, total[b0:b1],
                                ctx.tau)
                    torch.bmm(w, u[b0:b1], out=pu[b0:b1, r0:r1])
                    row_sums_p[b0:b1, r0:r1] = r
            return (row_sums_p * u - pu).mul_(grad_out * (-4.0 / (ctx.tau * B))), None, None
