"""
The dispersion loss and its alternatives as the paper's Table 1 writes them, which hidden states they act on,
and the distillation loss. Pure functions of tensors. Tests: python -m pytest -q tests/test_losses.py

    logits, ce, hidden = model(idx, targets, return_hidden=True)
    loss = ce + reg_coeff * hidden_reg_loss(hidden, 'dispersion', loc='all', tau=reg_tau)
    # train.py makes the same call through losses_tiled.hidden_reg_loss, which may run the fast path instead

Each regularizer is a function of z [B, T, d] that forms token pairs within each sequence (never across the
batch) and returns one scalar averaged over the batch. With D = arccos(cossim) / pi in [0, 1] (1/2 = orthogonal):

    dispersion         log mean_{i!=j} exp(-D(z_i, z_j) / tau)                    (the paper's loss)
    orthogonalization  mean_{i!=j} max(0, margin - D(z_i, z_j))^2
    l2_repel           log mean_{i,j} exp(-||z_i - z_j||^2 / tau) + norm_coeff * mean(z^2)
    decorrelation      mean_{i!=j} C_ij^2, C the token-token correlation matrix
    infonce_cos        log mean_{i,j} exp(cossim(z_i, z_j) / tau)  (Wang & He 2025, "Diffuse and Disperse")

This file is the definition: each function computes its formula in plain autograd, in float32 (float64 stays
float64) whatever the input dtype and autocast (arccos near +-1 and logsumexp are where bfloat16 goes wrong).
It imports nothing of ours. losses_tiled.py, one floor up, computes the same losses tile by tile (memory linear
in T, fused kernels on CUDA) and chooses between the two for train.py: the fast path only where it pays, and only
after checking at start-up that it still equals the definition here, so an edited formula trains or fails loudly.
A new regularizer: write a function of z with its options as keyword arguments, add it to REGULARIZERS.
"""
import functools
import inspect
import math

import torch
import torch.nn.functional as F


def dispersion(z, tau=1.0, clamp=0.1):
    """The paper's dispersion loss (Table 1, "Ours"; Eq. L_disp): per sequence log mean_{i!=j} exp(-D_ij / tau).
    The paper writes log sum_{i!=j}; the mean differs by the constant log(T(T-1)): the same gradients and a
    readable value, -1/(2 tau) when all tokens are orthogonal, -arccos(1 - clamp)/(pi tau) (its maximum) when
    they coincide. clamp: see cosine_matrix; 0.1 is the official GPT-2 script's --clamp_threshold, the official
    Qwen3 script has no flag and runs with the class default 0.25. The official code (lm_dispersion/dispersion.py)
    normalizes with z / (||z|| + 1e-2), an eps on every norm that shrinks every cosine (identical unit vectors get
    1/1.01^2) and breaks scale invariance; here the floor is for the zero vector only. It adds 1e-2 inside the
    logsumexp, a constant, dropped here."""
    _check_positive(tau=tau)
    D = torch.arccos(cosine_matrix(z, clamp)) / math.pi  # angular distance in [0, 1], (B, T, T)
    return log_mean_exp(-D / tau, off_diagonal=True)


def orthogonalization(z, margin=0.5, clamp=0.1):
    """Orthogonalization (Table 1, "Ours"): mean_{i!=j} max(0, margin - D_ij)^2, with D clamped as in dispersion.
    margin 1/2 is 90 degrees: acute pairs are pushed apart, orthogonal and obtuse ones left alone. Wang & He's
    hinge uses D = -cossim and a free margin. The official code normalizes with the same 1e-2 eps as dispersion."""
    D = torch.arccos(cosine_matrix(z, clamp)) / math.pi
    return mean_off_diagonal(torch.relu(margin - D).square())


def l2_repel(z, tau=1.0, norm_coeff=0.1, off_diagonal=False):
    """l2-repel (Table 1, "Ours") as the official code computes it: per sequence log mean_{i,j} exp(-||z_i - z_j||^2
    / tau) over all T^2 pairs, i = j included, plus norm_coeff * mean(z^2) over all B*T*d entries (the paper's
    lambda_norm ||Z||^2, 0.1 * mean in the official code), which keeps the tokens from escaping to infinity. The T
    diagonal terms are exp(0) = 1, so the log-mean is >= -log T. Not scale invariant, unlike the angular losses.
    The official code adds 1e-2 inside the logsumexp (a constant, dropped here).
    off_diagonal=True: over i != j only, as the paper's Table 1 writes it. That log-mean is unbounded below
    (spreading the tokens sends it to -infinity), and its gradient is larger by (S + T) / S, S the off-diagonal
    sum: the two differ most once the tokens are spread out."""
    _check_positive(tau=tau)
    z = float_tokens(z)
    # ||z_i - z_j||^2 from one matmul. Distances ignore a shift shared by the sequence, so center it first: the
    # Gram trick then cancels ||z_i - mean||^2, not ||z_i||^2 (hidden states have large shared offsets, which
    # would cost float32 digits exactly where the near pairs, the ones that count, are)
    u = z - z.mean(dim=1, keepdim=True)
    sq = u.square().sum(dim=-1)  # (B, T)
    dist2 = (sq[:, :, None] + sq[:, None, :] - 2 * gram(u)).clamp_min(0)  # rounding can dip below 0
    dist2 = dist2.masked_fill(_eye(dist2), 0)  # and off 0 on the diagonal, which is exactly 0
    return log_mean_exp(-dist2 / tau, off_diagonal=off_diagonal) + norm_coeff * z.square().mean()


def decorrelation(z):
    """Decorrelation (Table 1, "Ours"): sum_{m!=n} Cov_mn^2 with Z_c = (Z - mu) / sigma. As in the official code,
    each TOKEN is standardized over its d features (unbiased std) and C = Z_c Z_c^T / (d - 1) is the [T, T]
    token-token correlation; the loss is mean_{i!=j} C_ij^2 (the official code means where the paper sums: a
    constant factor). The paper's text and Figure 6b speak of decorrelating features (a [d, d] matrix); the code
    that produced its numbers does tokens, and so do we. A constant token counts as uncorrelated, not NaN."""
    z = float_tokens(z)
    d = z.shape[-1]
    if d < 2:
        raise ValueError(f"decorrelation needs at least 2 features, got d={d}")
    zc = (z - z.mean(dim=-1, keepdim=True)) / z.std(dim=-1, keepdim=True).clamp_min(_NORM_FLOOR)
    return mean_off_diagonal((gram(zc) / (d - 1)).square())


def infonce_cos(z, tau=1.0):
    """Wang & He (2025), "Diffuse and Disperse", the InfoNCE-cosine loss the paper starts from (Table 1, left
    column): log mean_{i,j} exp(cossim_ij / tau) over ALL pairs, the diagonal (cossim = 1) included, no clamp
    (no arccos). It differs from dispersion by the cosine in place of the angle and by keeping i = j."""
    _check_positive(tau=tau)
    return log_mean_exp(cosine_matrix(z) / tau)


REGULARIZERS = {  # train.py's reg: a new one is a function above and a line here
    'dispersion': dispersion,
    'orthogonalization': orthogonalization,
    'l2_repel': l2_repel,
    'decorrelation': decorrelation,
    'infonce_cos': infonce_cos,
}

# -----------------------------------------------------------------------------
# the pieces the formulas are made of

_NORM_FLOOR = 1e-12  # a token shorter than this counts as the zero vector: no direction, no gradient


def float_tokens(z):
    """z checked to be hidden states [B, T >= 2, d], in float32 (float64 stays float64)."""
    if not torch.is_tensor(z) or z.dim() != 3 or not z.is_floating_point():
        what = f"shape {tuple(z.shape)} {z.dtype}" if torch.is_tensor(z) else type(z).__name__
        raise ValueError(f"expected floating-point hidden states of shape [B, T, d], got {what}")
    if z.shape[1] < 2:
        raise ValueError(f"need at least 2 tokens per sequence to form pairs, got T={z.shape[1]}")
    return z if z.dtype == torch.float64 else z.float()


def gram(x):
    """x x^T per sequence, (B, T, T), in x's dtype even under autocast (which would run the matmul in bfloat16).
    On CUDA, train.py allows TF32 for matmuls, these included: emulated against float64 on [8, 256, 768] hidden
    states with mean cosine 0 to 0.7, TF32 moves the dispersion loss by <= 2.2e-7 relative and its gradient by
    <= 3e-4 of its largest entry (python docs/tf32_error.py). The condensation measurement is exact float32."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.bmm(x, x.transpose(1, 2))


def cosine_matrix(z, clamp=None):
    """The exact cosines of the tokens of each sequence, (B, T, T): no eps on the norms; the zero vector has
    cosine 0 with everything and gets no gradient. With clamp, clamped to [-1+clamp, 1-clamp] by the
    straight-through trick: the value is clamped, the gradient flows as if it were not, with arccos' evaluated
    inside the band, so it stays finite where tokens coincide (as the official code does)."""
    if clamp is not None and not 0 < clamp < 1:  # clamp = 0 lets arccos' reach infinity at coinciding tokens
        raise ValueError(f"clamp must be in (0, 1), got {clamp!r}")
    z = float_tokens(z)
    norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True)
    zhat = torch.where(norm >= _NORM_FLOOR, z / norm.clamp_min(_NORM_FLOOR), 0.0)
    c = gram(zhat)
    return c if clamp is None else c + (c.clamp(-1 + clamp, 1 - clamp) - c).detach()


def log_mean_exp(x, off_diagonal=False):
    """x (B, T, T) -> mean over b of log mean_{i,j} exp(x_bij), over i != j if off_diagonal."""
    T = x.shape[-1]
    if off_diagonal:
        x = x.masked_fill(_eye(x), -math.inf)
    return (torch.logsumexp(x.flatten(1), dim=1) - math.log(T * (T - 1) if off_diagonal else T * T)).mean()


def mean_off_diagonal(x):
    """x (B, T, T) -> the mean of x_bij over b and i != j."""
    return x[:, ~_eye(x)].mean()


def _eye(x):
    return torch.eye(x.shape[-1], dtype=torch.bool, device=x.device)


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


# -----------------------------------------------------------------------------
# which hidden states, which tokens, and the definition's entry point (train.py goes through losses_tiled.py)

LOCATIONS = ('all', 'early_half', 'late_half', 'last')


def select_layers(num_hidden, loc):
    """Indices into the model's hidden states (num_hidden = n_layer + 1; hidden[0] is the embedding, hidden[i] the
    output of block i, the last one after the final norm) that the regularizer acts on. As the official GPT-2
    script (CustomLossTrainer.disperse_hidden_states), with N = num_hidden - 1 blocks and mid = N // 2: 'last' =
    [N]; 'all' = 1..N (never the embedding); 'early_half' = 1..mid; 'late_half' = mid+1..N, so an odd N gives the
    extra block to the late half (N = 7: [1, 2, 3] and [4, 5, 6, 7]); with N = 1 both halves are [1]. A list or
    tuple of ints picks those, negative ones from the end (-1 = the last); 0 (the embedding) only when asked."""
    if isinstance(num_hidden, bool) or not isinstance(num_hidden, int) or num_hidden < 2:
        raise ValueError(f"need at least 2 hidden states (embedding + one block), got {num_hidden!r}")
    blocks = list(range(1, num_hidden))
    mid = len(blocks) // 2
    if isinstance(loc, str) and loc in LOCATIONS:
        return {'last': [num_hidden - 1], 'all': blocks, 'late_half': blocks[mid:],
                'early_half': blocks[:max(mid, 1)]}[loc]  # official: a single block serves as both halves
    if isinstance(loc, (list, tuple)) and len(loc) > 0:
        picked = []
        for i in loc:
            if isinstance(i, bool) or not isinstance(i, int) or not -num_hidden <= i < num_hidden:
                raise ValueError(f"layer index {i!r} in loc is not an int in [{-num_hidden}, {num_hidden - 1}]")
            if i % num_hidden in picked:
                raise ValueError(f"layer index {i!r} in loc picks hidden state {i % num_hidden} twice")
            picked.append(i % num_hidden)
        return picked
    raise ValueError(f"loc must be one of {', '.join(LOCATIONS)} or a non-empty list of hidden-state indices, "
                     f"got {loc!r}")


def subsample(z, max_tokens, generator=None):
    """Keep max_tokens random positions of z [B, T, d]: one permutation shared by the whole batch, drawn fresh
    on every call, as the official code does with its default max_tokens=256. None or 0 (our default) = all."""
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


@functools.cache
def _options_of(fn):
    """fn's keyword options and their defaults (everything after z)."""
    return {p.name: p.default for p in list(inspect.signature(fn).parameters.values())[1:]}


def reg_inputs(hidden, name, loc='all', max_tokens=None, generator=None, **options):
    """hidden_reg_loss's checks and inputs: (z, kwargs), z [L*B, T, d] the tokens of the hidden states (the model's
    n_layer + 1 tensors [B, T, d]) that select_layers picks, kwargs the options the loss `name` takes (its
    defaults filled in). options (tau, clamp, margin, ...) go to the loss if its signature takes them, so one call
    serves every regularizer; one that none takes is an error. With max_tokens, each layer draws its own tokens, in
    layer order (the official code calls the loss once per layer). The layers go through the loss at once: every
    loss is a mean over sequences, so this is exactly the mean of the per-layer losses."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; expected one of {', '.join(REGULARIZERS)}")
    if 'impl' in options or 'fuse' in options:  # they were this function's before the fast path moved up a floor
        raise ValueError("losses.hidden_reg_loss runs the definition only: impl= and fuse= are "
                         "losses_tiled.hidden_reg_loss's, which chooses between it and the fast path")
    unknown = set(options).difference(*map(_options_of, REGULARIZERS.values()))
    if unknown:
        raise ValueError(f"option {sorted(unknown)[0]!r} is taken by no regularizer ({', '.join(REGULARIZERS)})")
    layers = select_layers(len(hidden), loc)
    shape = tuple(hidden[layers[0]].shape)
    for i in layers:
        if hidden[i].dim() != 3 or tuple(hidden[i].shape) != shape:
            raise ValueError(f"hidden state {i} has shape {tuple(hidden[i].shape)}, expected [B, T, d] = {shape}")
    z = torch.cat([subsample(hidden[i], max_tokens, generator) for i in layers])  # (L*B, T, d)
    kwargs = {k: options.get(k, default) for k, default in _options_of(REGULARIZERS[name]).items()
              if k in options or default is not inspect.Parameter.empty}
    return z, kwargs


def reg_loss(name, z, **kwargs):
    """The definition REGULARIZERS[name](z, **kwargs), in float32 (float64 stays float64) with autocast off."""
    with torch.autocast(device_type=z.device.type, enabled=False):  # a new loss's own matmuls, in float32 too
        return REGULARIZERS[name](float_tokens(z), **kwargs)


def hidden_reg_loss(hidden, name, loc='all', max_tokens=None, generator=None, **options):
    """The regularizer `name`, as defined above, averaged over the hidden states that select_layers picks (see
    reg_inputs for the options). train.py calls losses_tiled.hidden_reg_loss, which runs this or the fast path."""
    z, kwargs = reg_inputs(hidden, name, loc, max_tokens, generator, **options)
    return reg_loss(name, z, **kwargs)


# -----------------------------------------------------------------------------
# knowledge distillation (the paper's Figure 5 baseline)

def distillation(student_logits, teacher_logits, temperature=1.0):
    """Hinton et al. (2015): KL(teacher || student) between softmax(logits / temperature) per token, averaged
    over tokens, times temperature^2 (gradients keep their scale as the temperature changes). Logits [..., V];
    the teacher is detached; computed in float32."""
    _check_positive(temperature=temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape (same vocabulary needed)")
    dtype = torch.float64 if student_logits.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        log_p_student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1).flatten(0, -2)
        log_p_teacher = F.log_softmax(teacher_logits.detach().to(dtype) / temperature, dim=-1).flatten(0, -2)
        # 'batchmean' divides the sum by the number of rows: the mean over tokens of the per-token KL
        kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction='batchmean')
        return kl * temperature ** 2
