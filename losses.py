"""
The dispersion loss and its alternatives (paper, Table 1), which hidden states they act on, and the
distillation loss. Pure functions of tensors: nothing here knows about models, data or training.

    python -m pytest -q tests/test_losses.py

train.py calls one entry point, with the model's n_layer + 1 hidden states:

    logits, ce, hidden = model(idx, targets, return_hidden=True)
    loss = ce + reg_coeff * hidden_reg_loss(hidden, 'dispersion', loc='all', tau=reg_tau)

Every regularizer takes z of shape [B, T, d], forms token pairs *within each sequence* (never across
sequences of the batch) and returns one scalar averaged over the batch. With D(z_i, z_j) the angular
distance arccos(cossim(z_i, z_j)) / pi, which lies in [0, 1] (1/2 = orthogonal):

    dispersion         log mean_{i!=j} exp(-D / tau)                              (the paper's loss)
    orthogonalization  mean_{i!=j} max(0, margin - D)^2
    l2_repel           log mean_{i!=j} exp(-||z_i - z_j||^2 / tau) + norm_coeff * mean(z^2)
    decorrelation      mean_{i!=j} C_ij^2, C = token-token correlation matrix
    infonce_cos        log mean_{i,j} exp(cossim / tau)        (Wang & He 2025, "Diffuse and Disperse")

Everything is computed in float32 (float64 if the input is float64), whatever the input dtype and
whatever autocast says: arccos near +-1 and logsumexp are where bfloat16 goes wrong.

All five go tile by tile over the [B, T, T] pair matrix with a hand-written backward: past a small budget
what they keep for backward grows with B*T*d, not B*T^2, and on CUDA each tile's elementwise work is one or
two kernels fused by torch.compile.
"""
import math
import warnings

import torch
import torch.nn.functional as F

_NORM_FLOOR = 1e-12         # a token shorter than this counts as the zero vector: no direction, no gradient
# how many entries of the [B, T, T] pair matrix are processed at once: 16 MiB of float32 on CPU, 256 MiB on
# GPU (fewer, larger kernels: 1.2-1.9x faster at T >= 1024 on an H200); other devices use the CPU size
_TILE_ENTRIES = {'cpu': 2 ** 22, 'cuda': 2 ** 26}
_KEEP_ENTRIES = 2 ** 24     # up to this many entries (64 MiB of float32) forward computes W in one tile and keeps
                            # it for backward: recomputing it costs a third more time (a matmul and every pass again)


def _no_autocast(t):
    return torch.autocast(device_type=t.device.type, enabled=False)


def _subsample(z, max_tokens, generator=None):
    """Keep max_tokens random positions of z [B, T, d]: one permutation shared by the whole batch,
    drawn fresh on every call (as the official code does, with max_tokens=256). None or 0 = all tokens."""
    if not max_tokens:
        return z
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 2:
        raise ValueError(f"max_tokens must be None, 0 or an int >= 2, got {max_tokens!r}")
    T = z.shape[1]
    if T <= max_tokens:
        return z
    device = generator.device if generator is not None else z.device
    keep = torch.randperm(T, generator=generator, device=device)[:max_tokens]
    return z[:, keep.to(z.device)]


def _prepare(z, max_tokens, generator):
    """Check the shape, subsample tokens, upcast to float32 (float64 stays float64)."""
    if not torch.is_tensor(z) or z.dim() != 3 or not z.is_floating_point():
        what = f"shape {tuple(z.shape)} {z.dtype}" if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"expected floating-point hidden states of shape [B, T, d], got {what}")
    z = _subsample(z, max_tokens, generator)
    if z.shape[1] < 2:
        raise ValueError(f"need at least 2 tokens per sequence to form pairs, got T={z.shape[1]}")
    return z if z.dtype == torch.float64 else z.float()


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


# -----------------------------------------------------------------------------
# the pair losses, tile by tile over the [B, T, T] pair matrix: the tiles' math, then its fused versions

def _blocks(B, T, device):
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

_L2_FLOOR = -60.0  # terms below e^-60 of their row's largest are floored there: far pairs would otherwise give
                   # denormal floats, 10-100x slower on CPU (in backward's matmul too), for a change < T e^-60


def _l2_terms(g, sq_rows, sq, r0, tau):
    """One tile of Gram entries g = u_rows u^T (b, rows, T; consumed in place) -> (t, m): the logits
    x_ij = -||u_i - u_j||^2 / tau, m (b, rows, 1) their row max over j != i, t = exp(max(x - m, -60)) with a
    zero diagonal."""
    x = g.mul_(2).sub_(sq_rows[:, :, None]).sub_(sq[:, None, :]).clamp_max_(0).mul_(1 / tau)
    x.diagonal(offset=r0, dim1=1, dim2=2).fill_(-math.inf)  # i = j is not a pair
    m = x.amax(dim=2, keepdim=True)
    t = x.sub_(m).clamp_min_(_L2_FLOOR).exp_()
    t.diagonal(offset=r0, dim1=1, dim2=2).fill_(0)
    return t, m


def _l2_row_stat(t, m):
    """Per row i of a tile: log sum_{j != i} exp(x_ij) from t = exp(x - m)."""
    return t.sum(dim=2).log_().add_(m.squeeze(2))


def _l2_tile_row_stat(g, sq_rows, sq, r0, tau):
    """Forward on one tile: its rows' statistic."""
    return _l2_row_stat(*_l2_terms(g, sq_rows, sq, r0, tau))


def _l2_tile_weights(g, sq_rows, sq, r0, lse, tau):
    """Backward on one tile: (P, r), P_ij = exp(x_ij - lse_b) = d lse_b / d x_ij and r its row sums."""
    t, m = _l2_terms(g, sq_rows, sq, r0, tau)
    w = t.mul_(torch.exp(m - lse))
    return w, w.sum(dim=2, keepdim=True)


def _l2_whole_tile(g, sq, tau):
    """Forward when the whole [B, T, T] matrix is one tile small enough to keep: (row_stat, P, r)."""
    t, m = _l2_terms(g, sq, sq, 0, tau)
    row_stat = _l2_row_stat(t, m)
    w = t.mul_(torch.exp(m - torch.logsumexp(row_stat, dim=1)[:, None, None]))
    return row_stat, w, w.sum(dim=2, keepdim=True)


# On CUDA the elementwise chain of each tile (clamp, arccos, exp, the row sums, the weights) runs as one or two
# fused kernels made by torch.compile, instead of a dozen passes over the [B, T, T] tile in eager mode: the
# loss then costs little more than its matmuls. The fused versions work on a copy of the tile, which inductor
# never materializes, so the eager helpers above stay the single definition of the math (and the input is
# left intact for the eager fallback). Set COMPILE_ON = () to run eagerly everywhere; if compiling fails (no
# Triton, say), the loss warns once and runs eagerly. (One wrapper per helper, not one generic
# wrapper: dynamo's recompile limit counts per function.)
COMPILE_ON = ('cuda',)


def _fused_whole_tile(c, *args):
    return _whole_tile(c.clone(), *args)


def _fused_tile_row_stat(c, *args):
    return _tile_row_stat(c.clone(), *args)


def _fused_tile_weights(c, *args):
    return _tile_weights(c.clone(), *args)


def _fused_l2_whole_tile(g, *args):
    return _l2_whole_tile(g.clone(), *args)


def _fused_l2_tile_row_stat(g, *args):
    return _l2_tile_row_stat(g.clone(), *args)


def _fused_l2_tile_weights(g, *args):
    return _l2_tile_weights(g.clone(), *args)


_FUSED = {_whole_tile: _fused_whole_tile, _tile_row_stat: _fused_tile_row_stat, _tile_weights: _fused_tile_weights,
          _l2_whole_tile: _fused_l2_whole_tile, _l2_tile_row_stat: _fused_l2_tile_row_stat,
          _l2_tile_weights: _fused_l2_tile_weights}
_compiled = {}  # eager helper -> its compiled fused version, or False once compiling it failed


def _run(fn, c, *args):
    """fn(c, *args); on the devices in COMPILE_ON, its fused version instead."""
    if c.device.type not in COMPILE_ON or _compiled.get(fn) is False:
        return fn(c, *args)
    if fn not in _compiled:  # dynamic shapes: other tile sizes and diagonal offsets share a graph (0 and 1 get
                             # their own: dynamo specializes them), and a run uses one loss
        _compiled[fn] = torch.compile(_FUSED[fn], dynamic=True)
    try:
        return _compiled[fn](c, *args)
    except torch.OutOfMemoryError:
        raise  # not the compiler's fault: eager would need the memory too
    except Exception as e:  # noqa: BLE001 (any compiler failure: the eager path computes the same)
        first_line = str(e).splitlines()[0] if str(e) else ''
        warnings.warn(f"losses.py: torch.compile of {fn.__name__} failed ({type(e).__name__}: {first_line}); "
                      f"running it eagerly")
        _compiled[fn] = False
        return fn(c, *args)


class _CosinePairLoss(torch.autograd.Function):
    """mean_b loss_b of one of four losses of the within-sequence cosine matrix c = zhat zhat^T:

        'dispersion'         loss_b = log mean_{i!=j} exp(-arccos(ct_ij) / (pi tau))
        'orthogonalization'  loss_b = mean_{i!=j} max(0, margin - arccos(ct_ij) / pi)^2
        'infonce_cos'        loss_b = log mean_{i,j} exp(c_ij / tau)
        'decorrelation'      loss_b = mean_{i!=j} c_ij^2      (z centered over features first: c = correlation)

    ct = c clamped to [-1+clamp, 1-clamp] with the straight-through trick: the value uses ct, the
    gradient flows as if there were no clamp, with arccos' evaluated at ct (so finite at c = +-1).

    Autograd through these formulas keeps several [B, T, T] tensors alive until backward. Here the
    gradient is written by hand: W = dL/dc, and since every loss is a sum over symmetric pairs, W is
    symmetric and dL/dzhat = (W + W^T) zhat = 2 W zhat; then through zhat = z / ||z||,
    dL/dz = (g - zhat <zhat, g>) / ||z||. When the whole [B, T, T] matrix is small (_KEEP_ENTRIES, e.g.
    6 layers x 1 sequence x 1,600 tokens) forward computes W at once and keeps it for backward; beyond
    that forward keeps only zhat, the norms and the per-sequence log-sums, and backward recomputes c tile
    by tile, so memory grows with the number of tokens, not with its square.
    """

    @staticmethod
    def forward(ctx, z, kind, tau, clamp, margin):
        B, T, _ = z.shape
        norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)  # (B, T, 1)
        zhat = z / norm.clamp_min(_NORM_FLOOR)  # a floor for the zero vector only, not an eps on every norm
        weights = weight_scale = None
        tiles = list(_blocks(B, T, z.device))
        if len(tiles) == 1 and B * T * T <= _KEEP_ENTRIES and ctx.needs_input_grad[0]:
            c = torch.bmm(zhat, zhat.transpose(1, 2))
            row_stat, weights, weight_scale = _run(_whole_tile, c, kind, tau, clamp, margin)
        else:
            row_stat = z.new_empty(B, T)
            for b0, b1, r0, r1 in tiles:
                c = torch.bmm(zhat[b0:b1, r0:r1], zhat[b0:b1].transpose(1, 2))  # (b, rows, T)
                row_stat[b0:b1, r0:r1] = _run(_tile_row_stat, c, r0, kind, tau, clamp, margin)
        lse = _log_sums(row_stat, kind)
        if kind in _MEAN_OF_SQUARES:
            per_seq = row_stat.sum(dim=1) / (T * (T - 1))
        else:  # log mean = log sum - log(#pairs): the paper's log-sum less a constant, so the same gradients
            per_seq = lse.flatten() - math.log(T * T if kind == 'infonce_cos' else T * (T - 1))
        ctx.save_for_backward(zhat, norm, lse, weights, weight_scale)
        ctx.kind, ctx.tau, ctx.clamp, ctx.margin = kind, tau, clamp, margin
        return per_seq.mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        zhat, norm, lse, weights, weight_scale = ctx.saved_tensors
        B, T, _ = zhat.shape
        with _no_autocast(zhat):
            if weights is not None:
                grad_zhat = torch.bmm(weights, zhat)
                row_scale = weight_scale  # (B, 1, 1)
            else:
                grad_zhat = torch.empty_like(zhat)
                row_scale = zhat.new_empty(B, T, 1)
                for b0, b1, r0, r1 in _blocks(B, T, zhat.device):  # the same tiles as forward: same values
                    c = torch.bmm(zhat[b0:b1, r0:r1], zhat[b0:b1].transpose(1, 2))
                    w, s = _run(_tile_weights, c, r0, None if lse is None else lse[b0:b1], ctx.kind, ctx.tau,
                                ctx.clamp, ctx.margin)
                    torch.bmm(w, zhat[b0:b1], out=grad_zhat[b0:b1, r0:r1])
                    row_scale[b0:b1, r0:r1] = s
            # back through the normalization; a zero token has no direction and gets no gradient.
            # 2/B: the two halves of (W + W^T), and the mean over the batch
            radial = torch.einsum('btd,btd->bt', zhat, grad_zhat).unsqueeze(-1)  # <zhat, g>, (B, T, 1)
            inv_norm = norm.clamp_min(_NORM_FLOOR).reciprocal_().mul_(norm >= _NORM_FLOOR)
            grad_z = grad_zhat.addcmul_(zhat, radial, value=-1).mul_(inv_norm * row_scale * (grad_out * (2.0 / B)))
        return grad_z, None, None, None, None


def dispersion(z, tau=1.0, clamp=0.1, max_tokens=None, generator=None):
    """The paper's dispersion loss (Table 1, "Ours"; its Eq. L_disp), per sequence b:

        loss_b = log mean_{i!=j} exp(-D(z_i, z_j) / tau),   D = arccos(cossim) / pi in [0, 1]

    averaged over the batch. The paper writes log sum_{i!=j}; the mean differs by the constant
    log(T(T-1)), so the gradients are the same and the value is readable: -1/(2 tau) when all tokens are
    orthogonal, -arccos(1 - clamp)/(pi tau) (its maximum) when they all coincide.

    clamp: cosines are clamped to [-1+clamp, 1-clamp] with the straight-through trick, so gradients
    stay finite at +-1. 0.1 is the official GPT-2 script's --clamp_threshold; the official Qwen3 script
    has no flag and runs with the class default 0.25.

    Differences from the official code (lm_dispersion/dispersion.py): it normalizes with
    z / (||z|| + 1e-2), an epsilon on every norm that shrinks every cosine (identical unit vectors get
    1/1.01^2) and breaks scale invariance; here the floor is for the zero vector only. It adds 1e-2 inside
    the logsumexp: a constant shift of the value, dropped. It subsamples 256 tokens by default
    (max_tokens=256 reproduces that); here the default is all tokens.
    """
    _check_positive(tau=tau)
    if not 0 < clamp < 1:  # clamp = 0 lets arccos' reach infinity at coinciding tokens
        raise ValueError(f"clamp must be in (0, 1), got {clamp!r}")
    z = _prepare(z, max_tokens, generator)
    with _no_autocast(z):
        return _CosinePairLoss.apply(z, 'dispersion', float(tau), float(clamp), 0.0)


def orthogonalization(z, margin=0.5, clamp=0.1, max_tokens=None, generator=None):
    """Orthogonalization (Table 1, "Ours"): mean_{i!=j} max(0, margin - D(z_i, z_j))^2, averaged over the
    batch, with the same clamped angular distance D as `dispersion`. margin 1/2 is 90 degrees: acute
    pairs are pushed apart, orthogonal and obtuse ones are left alone. Wang & He's hinge uses
    D = -cossim and a free margin. The official code normalizes with the same 1e-2 epsilon as in
    `dispersion`; here the floor is for the zero vector only."""
    if not 0 < clamp < 1:  # clamp = 0 lets arccos' reach infinity at coinciding tokens
        raise ValueError(f"clamp must be in (0, 1), got {clamp!r}")
    z = _prepare(z, max_tokens, generator)
    with _no_autocast(z):
        return _CosinePairLoss.apply(z, 'orthogonalization', 1.0, float(clamp), float(margin))


def infonce_cos(z, tau=1.0, max_tokens=None, generator=None):
    """Wang & He (2025), "Diffuse and Disperse", the InfoNCE-cosine dispersive loss the paper starts from
    (Table 1, left column): log mean_{i,j} exp(-D / tau) with D = -cossim, over ALL pairs, the diagonal
    (cossim = 1) included, and no clamp (no arccos, so nothing to blow up). For comparison with
    `dispersion`, which differs by the angular D and by leaving out i = j."""
    _check_positive(tau=tau)
    z = _prepare(z, max_tokens, generator)
    with _no_autocast(z):
        return _CosinePairLoss.apply(z, 'infonce_cos', float(tau), 0.0, 0.0)


def decorrelation(z, max_tokens=None, generator=None):
    """Decorrelation (Table 1, "Ours"): sum_{m!=n} Cov_mn^2 with Z_c = (Z - mu) / sigma.

    As in the official code, each TOKEN is standardized over its d features (unbiased std) and
    C = Z_c Z_c^T / (d - 1) is the [T, T] token-token correlation; the loss is mean_{i!=j} C_ij^2,
    averaged over the batch (the official code means where the paper sums: a constant factor). The
    paper's text and Figure 6b speak of decorrelating feature dimensions (a [d, d] matrix); the code that
    produced its numbers does tokens, and so do we.

    Invariant to a positive rescaling and to a shift (by a multiple of the all-ones vector) of each
    token, and to permuting features, but not to a general rotation of feature space (the per-token
    mean over features is not rotation invariant). A constant token (zero variance) counts as
    uncorrelated with everything instead of producing NaN.

    C_ij is the cosine of the two tokens once each is centered over its features (the (d - 1) and the
    standard deviations cancel), so this runs through the same memory-lean pair function as the angular
    losses, on the centered tokens.
    """
    z = _prepare(z, max_tokens, generator)
    if z.shape[-1] < 2:
        raise ValueError(f"decorrelation needs at least 2 features, got d={z.shape[-1]}")
    with _no_autocast(z):
        return _CosinePairLoss.apply(z - z.mean(dim=-1, keepdim=True), 'decorrelation', 1.0, 0.0, 0.0)


# -----------------------------------------------------------------------------
# l2-repel: the same tiling over squared distances

class _L2PairLoss(torch.autograd.Function):
    """mean_b of loss_b = log mean_{i!=j} exp(-||u_i - u_j||^2 / tau), u [B, T, d], tiled as _CosinePairLoss.

    With P the softmax over the pairs of a sequence (symmetric) and r_i = sum_j P_ij, the gradient is
    d loss_b / d u_i = -(4 / tau) (r_i u_i - (P u)_i): one matmul per tile, P kept from forward when the whole
    matrix is small (_KEEP_ENTRIES), else recomputed tile by tile in backward.
    """

    @staticmethod
    def forward(ctx, u, tau):
        B, T, _ = u.shape
        sq = u.square().sum(dim=-1)  # (B, T)
        weights = row_sums = None
        tiles = list(_blocks(B, T, u.device))
        if len(tiles) == 1 and B * T * T <= _KEEP_ENTRIES and ctx.needs_input_grad[0]:
            row_stat, weights, row_sums = _run(_l2_whole_tile, torch.bmm(u, u.transpose(1, 2)), sq, tau)
        else:
            row_stat = u.new_empty(B, T)
            for b0, b1, r0, r1 in tiles:
                g = torch.bmm(u[b0:b1, r0:r1], u[b0:b1].transpose(1, 2))
                row_stat[b0:b1, r0:r1] = _run(_l2_tile_row_stat, g, sq[b0:b1, r0:r1], sq[b0:b1], r0, tau)
        lse = torch.logsumexp(row_stat, dim=1)[:, None, None]
        ctx.save_for_backward(u, sq, lse, weights, row_sums)
        ctx.tau = tau
        return (lse.flatten() - math.log(T * (T - 1))).mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        u, sq, lse, weights, row_sums = ctx.saved_tensors
        B, T, _ = u.shape
        with _no_autocast(u):
            if weights is not None:
                pu = torch.bmm(weights, u)
            else:
                pu, row_sums = torch.empty_like(u), u.new_empty(B, T, 1)
                for b0, b1, r0, r1 in _blocks(B, T, u.device):
                    g = torch.bmm(u[b0:b1, r0:r1], u[b0:b1].transpose(1, 2))
                    w, r = _run(_l2_tile_weights, g, sq[b0:b1, r0:r1], sq[b0:b1], r0, lse[b0:b1], ctx.tau)
                    torch.bmm(w, u[b0:b1], out=pu[b0:b1, r0:r1])
                    row_sums[b0:b1, r0:r1] = r
            return (row_sums * u - pu).mul_(grad_out * (-4.0 / (ctx.tau * B))), None


def l2_repel(z, tau=1.0, norm_coeff=0.1, max_tokens=None, generator=None):
    """l2-repel (Table 1, "Ours"), per sequence:

        loss_b = log mean_{i!=j} exp(-||z_i - z_j||^2 / tau)  (+ norm_coeff * mean(z^2) over all entries)

    The norm term (the paper's lambda_norm ||Z||^2, 0.1 * mean as in the official code) stops the tokens
    from escaping to infinity. Not scale invariant, unlike the angular losses.

    The official code keeps the diagonal (log mean over all T^2 pairs, where the T diagonal terms are
    exp(0) = 1); we follow the paper's formula, i != j. The paper calls the difference cosmetic; it is
    not quite: constants inside a log-sum leave the gradient's direction alone but scale it by
    S / (S + T), S the off-diagonal sum, which is tiny once the tokens are spread out. The official
    code also adds 1e-2 inside the logsumexp (a constant, dropped here).
    """
    _check_positive(tau=tau)
    z = _prepare(z, max_tokens, generator)
    with _no_autocast(z):
        # ||z_i - z_j||^2 from one matmul. Distances ignore a shift shared by the sequence, so center it
        # first: the Gram trick then cancels ||z - mean||^2, not ||z||^2 (hidden states have large shared
        # offsets, which would cost float32 digits exactly where the near pairs, the ones that count, are)
        centered = z - z.mean(dim=1, keepdim=True)
        return _L2PairLoss.apply(centered, float(tau)) + norm_coeff * z.square().mean()


# -----------------------------------------------------------------------------
# which hidden states, and the entry point train.py calls

REGULARIZERS = {
    'dispersion': dispersion,
    'orthogonalization': orthogonalization,
    'l2_repel': l2_repel,
    'decorrelation': decorrelation,
    'infonce_cos': infonce_cos,
}
_TAKES_TAU = ('dispersion', 'l2_repel', 'infonce_cos')
LOCATIONS = ('all', 'early_half', 'late_half', 'last')


def select_layers(num_hidden, loc):
    """Indices into the model's hidden-state list (num_hidden = n_layer + 1; hidden[0] is the embedding,
    hidden[i] the output of block i, the last one after the final norm) that the regularizer acts on.

    As the official GPT-2 script (CustomLossTrainer.disperse_hidden_states), with N = num_hidden - 1
    blocks and mid = N // 2: 'last' = [N] (the final, normed state); 'all' = 1..N (the embedding is
    never included); 'early_half' = 1..mid; 'late_half' = mid+1..N, so an odd N gives the extra block
    to the late half (N = 7: [1, 2, 3] and [4, 5, 6, 7]); with N = 1 both halves are [1].
    A list or tuple of ints picks those indices, negative ones counted from the end as in Python
    (-1 = the last, normed state); 0 (the embedding) is allowed when asked for explicitly.
    """
    if isinstance(num_hidden, bool) or not isinstance(num_hidden, int) or num_hidden < 2:
        raise ValueError(f"need at least 2 hidden states (embedding + one block), got {num_hidden!r}")
    blocks = list(range(1, num_hidden))
    mid = len(blocks) // 2
    if isinstance(loc, str):
        if loc == 'last':
            return [num_hidden - 1]
        if loc == 'all':
            return blocks
        if loc == 'early_half':
            return blocks[:max(mid, 1)]  # official: a single block serves as both halves
        if loc == 'late_half':
            return blocks[mid:]
    elif isinstance(loc, (list, tuple)) and len(loc) > 0:
        picked = []
        for i in loc:
            if isinstance(i, bool) or not isinstance(i, int) or not -num_hidden <= i < num_hidden:
                raise ValueError(f"layer index {i!r} in loc is not an int in [{-num_hidden}, {num_hidden - 1}]")
            if i % num_hidden in picked:
                raise ValueError(f"layer index {i!r} in loc picks hidden state {i % num_hidden} twice")
            picked.append(i % num_hidden)
        return picked
    raise ValueError(f"loc must be one of {', '.join(LOCATIONS)} or a non-empty list of hidden-state "
                     f"indices, got {loc!r}")


def hidden_reg_loss(hidden, name, loc='all', tau=1.0, max_tokens=None, generator=None, **kwargs):
    """The regularizer `name` averaged over the hidden states `select_layers(len(hidden), loc)` picks.

    hidden: the model's list of n_layer + 1 tensors [B, T, d]. tau goes to the losses that have one
    (dispersion, l2_repel, infonce_cos) and is ignored by the others; kwargs (clamp, margin, norm_coeff)
    go to the loss. With max_tokens, each layer draws its own token subset, in layer order (as the
    official code, which calls the loss once per layer).

    All selected layers go through the loss in one batched call, as [L*B, T, d]: every loss is a mean
    over sequences, so this is exactly the mean of the per-layer losses, in a few large kernels.
    """
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; expected one of {', '.join(REGULARIZERS)}")
    layers = select_layers(len(hidden), loc)
    shape = tuple(hidden[layers[0]].shape)
    for i in layers:
        if hidden[i].dim() != 3 or tuple(hidden[i].shape) != shape:
            raise ValueError(f"hidden state {i} has shape {tuple(hidden[i].shape)}, expected [B, T, d] = {shape}")
    z = torch.cat([_subsample(hidden[i], max_tokens, generator) for i in layers])  # (L*B, T, d)
    if name in _TAKES_TAU:
        kwargs['tau'] = tau
    return REGULARIZERS[name](z, **kwargs)


# -----------------------------------------------------------------------------
# knowledge distillation (the paper's Figure 5 baseline)

def distillation(student_logits, teacher_logits, temperature=1.0):
    """Hinton et al. (2015): KL(teacher || student) between softmax(logits / temperature) per token,
    averaged over tokens, times temperature^2 (so gradients keep their scale as the temperature
    changes). Logits [..., V]; the teacher is detached; computed in float32."""
    _check_positive(temperature=temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape (same vocabulary needed)")
    dtype = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    with _no_autocast(student_logits):
        log_p_student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1).flatten(0, -2)
        log_p_teacher = F.log_softmax(teacher_logits.detach().to(dtype) / temperature, dim=-1).flatten(0, -2)
        # 'batchmean' divides the sum by the number of rows: the mean over tokens of the per-token KL
        kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction='batchmean')
        return kl * temperature ** 2
