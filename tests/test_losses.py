"""
Tests for losses.py (the definitions) and losses_tiled.py (the accelerator):
(a) the definitions, and the tiled path, against closed forms and naive float64 formulas written out below;
(b) tiled == definition for every loss that has a tiled version, on each of its paths (W kept, W recomputed,
    row tiles), fused (torch.compile on CPU) or not, and its hand-written backward against finite differences;
(c) a sixth regularizer, registered at test time, runs through the entry point with no other change;
(d) l2_repel is the official form (diagonal kept), bounded below by -log T; off_diagonal=True is the i != j one;
(e) reg_impl='auto' runs the definition below 512 tokens per sequence, the fast path from there on, and only a fast
    path that still equals the definition: an edited formula in losses.py trains, or reg_impl='tiled' refuses it;
then invariances, degenerate inputs, the measured effect, layer selection, subsampling, memory, distillation.

    OMP_NUM_THREADS=1 python -m pytest -q tests/test_losses.py
"""
import ast
import math
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

import losses
import losses_tiled
from losses import (REGULARIZERS, decorrelation, dispersion, distillation, orthogonalization, select_layers,
                    subsample)
from losses_tiled import hidden_reg_loss  # the entry point train.py calls: the definition or the fast path, by impl
from test_train import ROOT, TINY, data_dir, metrics  # noqa: F401 (data_dir: a fixture)


@pytest.fixture(autouse=True)
def one_thread():
    # every tensor here is tiny: a second intra-op thread only adds waiting on a shared CPU
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


ANGULAR = ('dispersion', 'orthogonalization', 'infonce_cos')  # the ones built on cosines
IMPLS = ('reference', 'tiled')


# -----------------------------------------------------------------------------
# naive transcriptions of the formulas: plain autograd, every pair written out, no tricks

def off_diagonal(m):  # [B, T, T] -> [B, T(T-1)]
    return m[:, ~torch.eye(m.shape[-1], dtype=torch.bool)]


def ref_cos(z):
    zhat = z / z.norm(dim=-1, keepdim=True)
    return zhat @ zhat.transpose(1, 2)


def ref_angular_distance(z, clamp):
    c = ref_cos(z)
    c = c + (c.clamp(-1 + clamp, 1 - clamp) - c).detach()  # straight-through clamp
    return torch.arccos(c) / math.pi


def ref_dispersion(z, tau=1.0, clamp=0.1):
    D = off_diagonal(ref_angular_distance(z, clamp))
    return torch.log(torch.exp(-D / tau).mean(dim=1)).mean()


def ref_orthogonalization(z, margin=0.5, clamp=0.1):
    D = off_diagonal(ref_angular_distance(z, clamp))
    return (torch.relu(margin - D) ** 2).mean()


def ref_l2_repel_official(z, tau=1.0, norm_coeff=0.1):
    # the official code's form: cdist^2 over all T^2 pairs, logsumexp minus log T^2, plus 0.1 * mean(z^2)
    T = z.shape[1]
    logits = -torch.cdist(z, z) ** 2 / tau
    return (torch.logsumexp(logits.flatten(1), dim=1) - math.log(T * T)).mean() + norm_coeff * (z ** 2).mean()


def ref_l2_repel_off_diagonal(z, tau=1.0, norm_coeff=0.1):
    # the paper's Table 1 text: i != j only
    dist2 = ((z[:, :, None, :] - z[:, None, :, :]) ** 2).sum(-1)
    return torch.log(torch.exp(-off_diagonal(dist2) / tau).mean(dim=1)).mean() + norm_coeff * (z ** 2).mean()


def ref_decorrelation(z):
    d = z.shape[-1]
    zc = (z - z.mean(dim=-1, keepdim=True)) / z.std(dim=-1, keepdim=True)
    return (off_diagonal(zc @ zc.transpose(1, 2) / (d - 1)) ** 2).mean()


def ref_infonce_cos(z, tau=1.0):
    return torch.log(torch.exp(ref_cos(z) / tau).mean(dim=(1, 2))).mean()


REFERENCES = {'dispersion': ref_dispersion, 'orthogonalization': ref_orthogonalization,
              'l2_repel': ref_l2_repel_official, 'decorrelation': ref_decorrelation, 'infonce_cos': ref_infonce_cos}
OPTIONS = {'dispersion': {'tau': 0.4, 'clamp': 0.25}, 'orthogonalization': {'margin': 0.3, 'clamp': 0.05},
           'l2_repel': {'tau': 3.0, 'norm_coeff': 0.02}, 'decorrelation': {}, 'infonce_cos': {'tau': 0.3}}


def loss_fn(name, impl, fuse=False):
    """The loss `name` of one tensor z [B, T, d], through the entry point train.py calls, by `impl`."""
    return lambda z, **kw: hidden_reg_loss([z, z], name, loc='last', impl=impl, fuse=fuse, **kw)


def value_and_grad(fn, z, **kw):
    z = z.detach().clone().requires_grad_()
    value = fn(z, **kw)
    value.backward()
    return value.detach(), z.grad


def mean_pairwise_cosine(z):  # over i != j, averaged over the batch
    return off_diagonal(ref_cos(z.detach().double())).mean().item()


def random_rotation(d, generator):
    q, r = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=generator))
    return q * torch.sign(torch.diagonal(r))


def condensed_ish(B, T, d, seed):
    """Random tokens, plus near-duplicates and near-antipodes so that the clamp is active somewhere."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(B, T, d, dtype=torch.float64, generator=g)
    z[:, 1] = 2 * z[:, 0] + 1e-3 * torch.randn(B, d, dtype=torch.float64, generator=g)
    if T > 2:
        z[:, 2] = -0.5 * z[:, 0] + 1e-3 * torch.randn(B, d, dtype=torch.float64, generator=g)
    return z


# -----------------------------------------------------------------------------
# (a) closed forms, for the definition and for the tiled path

@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('tau', [0.25, 0.5, 1.0, 2.0])
def test_orthonormal_tokens_closed_forms(tau, impl):
    g = torch.Generator().manual_seed(0)
    T, d = 6, 8
    q = random_rotation(d, g)[:T]  # T orthonormal rows
    scales = torch.rand(2, T, 1, dtype=torch.float64, generator=g) * 5 + 0.1
    z = q.expand(2, T, d) * scales  # lengths don't matter to the angular losses
    # every pair at 90 degrees: D = 1/2
    assert loss_fn('dispersion', impl)(z, tau=tau).item() == pytest.approx(-1 / (2 * tau), abs=1e-12)
    assert loss_fn('dispersion', impl)(z.float(), tau=tau).item() == pytest.approx(-1 / (2 * tau), abs=1e-6)
    assert abs(loss_fn('orthogonalization', impl)(z).item()) < 1e-20
    # Wang & He keep the diagonal: T terms e^{1/tau}, T(T-1) terms e^0
    expected = math.log((T * (T - 1) + T * math.exp(1 / tau)) / T ** 2)
    assert loss_fn('infonce_cos', impl)(z, tau=tau).item() == pytest.approx(expected, abs=1e-12)
    # unit rows: every squared distance off the diagonal is 2, on it 0; mean(z^2) = 1/d
    unit = q.expand(2, T, d)
    official = math.log((T * (T - 1) * math.exp(-2 / tau) + T) / T ** 2)
    assert loss_fn('l2_repel', impl)(unit, tau=tau).item() == pytest.approx(official + 0.1 / d, abs=1e-12)
    assert loss_fn('l2_repel', impl)(unit, tau=tau, norm_coeff=0.0).item() == pytest.approx(official, abs=1e-12)
    assert (loss_fn('l2_repel', impl)(unit, tau=tau, norm_coeff=0.0, off_diagonal=True).item() ==
            pytest.approx(-2 / tau, abs=1e-12))


@pytest.mark.parametrize('impl', IMPLS)
def test_l2_repel_far_apart_tokens(impl):
    # squared distance 10^4: exp(-10^4 / tau) is 0 in any float. Diagonal kept: loss = log(2 / 4) + the norm term,
    # whose gradient 0.1 * 2 z / 4 is all there is; i != j: the log-sum is taken around its largest term, -d^2/tau
    fn = loss_fn('l2_repel', impl)
    z = torch.tensor([[[0.0, 0.0], [100.0, 0.0]]], dtype=torch.float64)
    value, grad = value_and_grad(fn, z, tau=2.0)
    assert value.item() == pytest.approx(-math.log(2) + 0.1 * 1e4 / 4, abs=1e-9)
    torch.testing.assert_close(grad, torch.tensor([[[0.0, 0.0], [5.0, 0.0]]], dtype=torch.float64))
    value, grad = value_and_grad(fn, z, tau=2.0, off_diagonal=True)
    assert value.item() == pytest.approx(-1e4 / 2 + 0.1 * 1e4 / 4, abs=1e-9)
    torch.testing.assert_close(grad, torch.tensor([[[100.0, 0.0], [-100.0 + 5.0, 0.0]]], dtype=torch.float64))
    value, grad = value_and_grad(fn, 30 * torch.randn(2, 9, 8))
    assert torch.isfinite(value) and torch.isfinite(grad).all()


@pytest.mark.parametrize('impl', IMPLS)
def test_decorrelation_closed_forms(impl):
    # rows 1..7 of the 8x8 Sylvester-Hadamard matrix: zero-mean +-1 rows, mutually orthogonal, so
    # every off-diagonal correlation is exactly 0
    h = torch.tensor([[1.0]], dtype=torch.float64)
    for _ in range(3):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    rows = h[1:]  # (7, 8)
    assert loss_fn('decorrelation', impl)(rows[None]).item() == pytest.approx(0.0, abs=1e-15)
    # repeat one token (scaled and shifted: still correlation 1): one pair, counted twice of 8*7
    z = torch.cat([rows, 3 * rows[:1] + 2])[None]
    assert loss_fn('decorrelation', impl)(z).item() == pytest.approx(2 / (8 * 7), abs=1e-15)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('tau', [0.5, 1.0])
def test_two_tokens_at_sixty_degrees(tau, impl):
    # z1 along x with length 2, z2 at 60 degrees with length 3: cos = 1/2, D = 1/3
    z = torch.tensor([[[2.0, 0.0], [1.5, 1.5 * math.sqrt(3)]]], dtype=torch.float64)
    s3, pi = math.sqrt(3), math.pi
    value, grad = value_and_grad(loss_fn('dispersion', impl), z, tau=tau)
    assert value.item() == pytest.approx(-1 / (3 * tau), abs=1e-14)
    # dL/dz1 = arccos-chain / |z1| times the tangent direction: worked out by hand
    expected = torch.tensor([[[0.0, 1 / (2 * pi * tau)], [1 / (2 * s3 * pi * tau), -1 / (6 * pi * tau)]]],
                            dtype=torch.float64)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-14)
    # orthogonalization: hinge 1/2 - 1/3 = 1/6
    value, grad = value_and_grad(loss_fn('orthogonalization', impl), z)
    assert value.item() == pytest.approx(1 / 36, abs=1e-14)
    expected = torch.tensor([[[0.0, 1 / (6 * pi)], [1 / (6 * s3 * pi), -1 / (18 * pi)]]], dtype=torch.float64)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize('impl', IMPLS)
def test_orthogonalization_by_hand_in_the_plane(impl):
    # tokens at 0, 45 and 90 degrees: two ordered pairs at D = 1/4 each way, the 90-degree pair is free
    fn = loss_fn('orthogonalization', impl)
    z = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 4.0]]], dtype=torch.float64)
    assert fn(z).item() == pytest.approx(4 * (1 / 4) ** 2 / 6, abs=1e-14)
    assert fn(z, margin=0.75).item() == pytest.approx((4 * 0.5 ** 2 + 2 * 0.25 ** 2) / 6, abs=1e-14)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('clamp', [0.1, 0.25])
@pytest.mark.parametrize('tau', [0.5, 1.0])
def test_identical_tokens_sit_at_the_clamp(clamp, tau, impl):
    z = torch.randn(1, 1, 7, dtype=torch.float64).expand(2, 5, 7) * torch.tensor([1.0, 3.0])[:, None, None]
    d_min = math.acos(1 - clamp) / math.pi
    value, grad = value_and_grad(loss_fn('dispersion', impl), z, tau=tau, clamp=clamp)
    assert value.item() == pytest.approx(-d_min / tau, abs=1e-14)
    # all tokens pull on each other along their common direction, which the normalization removes
    assert grad.abs().max().item() < 1e-14
    assert loss_fn('orthogonalization', impl)(z, clamp=clamp).item() == pytest.approx((0.5 - d_min) ** 2, abs=1e-14)
    assert loss_fn('infonce_cos', impl)(z, tau=tau).item() == pytest.approx(1 / tau, abs=1e-12)


@pytest.mark.parametrize('impl', IMPLS)
def test_orthogonalization_is_zero_for_orthogonal_or_obtuse_pairs(impl):
    fn = loss_fn('orthogonalization', impl)
    eye = torch.eye(4, dtype=torch.float64)[:3]
    z = torch.cat([eye, -2 * eye])[None]  # pairs at 90 or 180 degrees
    value, grad = value_and_grad(fn, z)
    assert value.item() == 0.0 and grad.abs().max().item() == 0.0
    tetrahedron = torch.tensor([[[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]], dtype=torch.float64)
    value, grad = value_and_grad(fn, tetrahedron)  # cos = -1/3 for every pair
    assert value.item() == 0.0 and grad.abs().max().item() == 0.0


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('name', list(REGULARIZERS))
def test_matches_naive_float64(name, impl):
    for seed, (B, T, d) in enumerate([(3, 7, 5), (2, 2, 3), (1, 11, 16)]):
        z = condensed_ish(B, T, d, seed)
        for kw in ({}, OPTIONS[name]):
            value, grad = value_and_grad(loss_fn(name, impl), z, **kw)
            ref_value, ref_grad = value_and_grad(REFERENCES[name], z, **kw)
            assert value.dtype == torch.float64
            torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
            # float32 input: computed in float32, close to the float64 truth
            value32, grad32 = value_and_grad(loss_fn(name, impl), z.float(), **kw)
            assert value32.dtype == torch.float32
            torch.testing.assert_close(value32.double(), ref_value, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(grad32.double(), ref_grad, rtol=1e-3, atol=1e-4)


# -----------------------------------------------------------------------------
# (b) the tiled path equals the definition, on each of its paths

def force_path(monkeypatch, path):
    """The tiled losses keep W = dL/dc from forward when the pair matrix is small ('keep'); past _KEEP_ENTRIES they
    recompute it in backward, in one tile ('recompute') or in row tiles past _TILE_ENTRIES ('tiles')."""
    if path != 'keep':
        monkeypatch.setattr(losses_tiled, '_KEEP_ENTRIES', 0)
    if path == 'tiles':
        monkeypatch.setitem(losses_tiled._TILE_ENTRIES, 'cpu', 20)  # T = 7: tiles of 2 rows; T = 11: of 1 row
    calls = []
    run = losses_tiled._run

    def spy(fuse, fn, *args):
        calls.append(fn.__name__)
        return run(fuse, fn, *args)
    monkeypatch.setattr(losses_tiled, '_run', spy)
    return calls


@pytest.mark.parametrize('path', ['keep', 'recompute', 'tiles'])
@pytest.mark.parametrize('name', list(REGULARIZERS))
def test_tiled_equals_the_definition(name, path, monkeypatch):
    calls = force_path(monkeypatch, path)
    for seed, (B, T, d) in enumerate([(3, 7, 5), (1, 11, 16)]):
        z = condensed_ish(B, T, d, seed)
        assert off_diagonal(ref_cos(z)).abs().max() > 0.99  # the clamp acts
        for kw in ({}, OPTIONS[name]):
            losses_tiled.fast_path_mismatch(name, **kw)  # the start-up check (cached): its tiles are not counted
            calls.clear()
            value, grad = value_and_grad(loss_fn(name, 'tiled'), z, **kw)
            ref_value, ref_grad = value_and_grad(loss_fn(name, 'reference'), z, **kw)
            torch.testing.assert_close(value, ref_value, rtol=1e-13, atol=1e-14)
            torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-14)
            # the path asked for is the one taken: one kept tile, or forward tiles then as many backward ones
            if path == 'keep':
                assert len(calls) == 1 and calls[0].endswith('whole_tile'), calls
            else:
                n = len(calls) // 2
                assert n == (1 if path == "recompute" else B * math.ceil(T / (20 // T))), calls
                assert all('weights' not in c for c in calls[:n]) and all('weights' in c for c in calls[n:]), calls


@pytest.mark.parametrize('kind', [*ANGULAR, 'decorrelation', 'l2'])
@pytest.mark.parametrize('path', ['keep', 'tiles'])
def test_gradcheck_hand_written_backward(kind, path, monkeypatch):
    # the backward against finite differences, where the clamp never acts (so the gradient is the true one)
    if path == 'tiles':  # recomputed in backward, in tiles of 2 rows
        monkeypatch.setattr(losses_tiled, '_KEEP_ENTRIES', 0)
        monkeypatch.setitem(losses_tiled._TILE_ENTRIES, 'cpu', 12)
    z = torch.randn(2, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert off_diagonal(ref_cos(z)).abs().max() < 0.85
    z.requires_grad_()
    if kind == 'l2':  # tau 20: the pairs' softmax is spread, every term counts
        fn = lambda z: losses_tiled._L2PairLoss.apply(z, 20.0, False)  # noqa: E731
    else:
        fn = lambda z: losses_tiled._CosinePairLoss.apply(z, kind, 0.7, 0.1, 0.5, False)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (z,), eps=1e-6, atol=1e-8, rtol=1e-6)


def inductor_compiles_on_cpu():
    if shutil.which('c++') is None and shutil.which('g++') is None:
        return False
    try:
        x = torch.arange(4.0)
        return torch.equal(torch.compile(lambda t: t * 2 + 1)(x), x * 2 + 1)
    except Exception:  # noqa: BLE001 (a machine without what inductor's C++ backend needs)
        return False


def test_fused_tiles_match_the_naive_formulas(monkeypatch):
    # on CUDA train.py passes fuse=True: each tile's elementwise chain runs through torch.compile. Here the same
    # fused functions are compiled for the CPU (inductor's C++ backend) and checked against the naive float64
    # transcriptions, for the kept-W path and for row tiles (diagonal offset r0 > 0, a short last tile)
    if not inductor_compiles_on_cpu():
        pytest.skip("torch.compile cannot build CPU kernels on this machine (no C++ toolchain)")
    monkeypatch.setattr(losses_tiled, '_compiled', {})
    graphs = torch._dynamo.utils.counters['stats']
    z = condensed_ish(3, 9, 6, seed=4)
    for mode in ('keep', 'tiles'):
        if mode == 'tiles':
            monkeypatch.setattr(losses_tiled, '_KEEP_ENTRIES', 0)
            monkeypatch.setitem(losses_tiled._TILE_ENTRIES, 'cpu', 4 * 9)  # 4 rows a tile: r0 = 0, 4, 8
        for name in REGULARIZERS:
            # a run uses one loss; cycling through five would reach dynamo's recompile limit, past which
            # it runs eagerly without a word, so start each afresh and count the graphs it compiles
            torch._dynamo.reset()
            before = graphs['unique_graphs']
            value, grad = value_and_grad(loss_fn(name, 'tiled', fuse=True), z)
            assert graphs['unique_graphs'] - before >= (1 if mode == 'keep' else 2), (mode, name)
            ref_value, ref_grad = value_and_grad(REFERENCES[name], z)
            torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
    # every helper compiled, none fell back to eager
    assert set(losses_tiled._compiled) == set(losses_tiled._FUSED)
    assert False not in losses_tiled._compiled.values()


def test_a_failing_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no backend here")
        return run
    monkeypatch.setattr(losses_tiled, '_compiled', {})
    monkeypatch.setattr(losses_tiled.torch, 'compile', broken_compile)
    z = condensed_ish(2, 7, 5, seed=5)
    fused = loss_fn('dispersion', 'tiled', fuse=True)
    with pytest.warns(UserWarning, match='torch.compile of _whole_tile failed .*no backend here.*eagerly'):
        value, grad = value_and_grad(fused, z)
    ref_value, ref_grad = value_and_grad(ref_dispersion, z)
    torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
    assert losses_tiled._compiled[losses_tiled._whole_tile] is False
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # once only: the next call goes straight to eager
        value_and_grad(fused, z)


# -----------------------------------------------------------------------------
# (c) a sixth regularizer: one function and one line in REGULARIZERS, nothing else

def uniformity(z, t=2.0):
    """Wang & Isola (2020)'s uniformity, as a researcher would add it to losses.py:
    log mean_{i!=j} exp(-t ||zhat_i - zhat_j||^2), with ||zhat_i - zhat_j||^2 = 2 - 2 cossim."""
    return losses.log_mean_exp(-t * (2 - 2 * losses.cosine_matrix(z)), off_diagonal=True)


def ref_uniformity(z, t):
    zhat = z / z.norm(dim=-1, keepdim=True)
    dist2 = ((zhat[:, :, None, :] - zhat[:, None, :, :]) ** 2).sum(-1)
    return torch.log(torch.exp(-t * off_diagonal(dist2)).mean(dim=1)).mean()


def test_a_sixth_regularizer_runs_through_the_entry_point(monkeypatch):
    monkeypatch.setitem(REGULARIZERS, 'uniformity', uniformity)
    g = torch.Generator().manual_seed(7)
    hidden = [torch.randn(2, 6, 5, dtype=torch.float64, generator=g).requires_grad_() for _ in range(4)]
    for impl in ('auto', 'tiled', 'reference'):  # no tiled version: every impl runs the definition
        for kw, t in (({}, 2.0), ({'t': 3.0}, 3.0)):
            # tau and clamp are train.py's options for the other losses: not in its signature, so not passed
            value = hidden_reg_loss(hidden, 'uniformity', impl=impl, tau=0.3, clamp=0.2, **kw)
            ref = torch.stack([ref_uniformity(hidden[i], t) for i in (1, 2, 3)]).mean()
            torch.testing.assert_close(value, ref, rtol=1e-12, atol=1e-12)
            grads = torch.autograd.grad(value, hidden[1:])
            ref_grads = torch.autograd.grad(ref, hidden[1:])
            for got, want in zip(grads, ref_grads):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)
    # its matmul runs in float32 under bfloat16 autocast, as the five's do
    z = torch.randn(2, 9, 16)

    def raw_matmul(z, t=2.0):
        return (z @ z.transpose(1, 2)).square().mean()
    monkeypatch.setitem(REGULARIZERS, 'raw_matmul', raw_matmul)
    plain = hidden_reg_loss([z, z], 'raw_matmul', loc='last')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        auto = hidden_reg_loss([z, z], 'raw_matmul', loc='last')
    assert auto.dtype == torch.float32 and auto.item() == plain.item()


def test_hidden_reg_loss_rejects_unknown_names_options_and_impls():
    hidden = [torch.randn(2, 5, 4, dtype=torch.float64) for _ in range(3)]
    with pytest.raises(ValueError, match="dispersion, orthogonalization, l2_repel, decorrelation, infonce_cos"):
        hidden_reg_loss(hidden, 'disperson')
    with pytest.raises(ValueError, match="option 'clmap' is taken by no regularizer"):
        hidden_reg_loss(hidden, 'dispersion', clmap=0.2)
    with pytest.raises(ValueError, match="unknown impl 'fast'"):
        hidden_reg_loss(hidden, 'dispersion', impl='fast')
    with pytest.raises(ValueError, match='hidden state 2'):
        hidden_reg_loss(hidden[:2] + [torch.randn(2, 6, 4)], 'dispersion')


@pytest.mark.parametrize('impl', IMPLS)
def test_hidden_reg_loss_passes_each_loss_its_own_options(impl):
    hidden = [torch.randn(2, 5, 4, dtype=torch.float64) for _ in range(3)]
    layer = hidden[2]
    assert hidden_reg_loss(hidden, 'dispersion', loc='last', impl=impl, clamp=0.3, margin=0.1).item() == \
        pytest.approx(dispersion(layer, clamp=0.3).item(), abs=1e-14)  # margin is orthogonalization's
    assert hidden_reg_loss(hidden, 'orthogonalization', loc='last', impl=impl, tau=5.0, margin=0.4).item() == \
        pytest.approx(orthogonalization(layer, margin=0.4).item(), abs=1e-14)  # tau is ignored
    assert hidden_reg_loss(hidden, 'decorrelation', loc='last', impl=impl, tau=5.0, clamp=0.3).item() == \
        pytest.approx(decorrelation(layer).item(), abs=1e-14)


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('name', list(REGULARIZERS))
@pytest.mark.parametrize('loc', ['all', 'early_half', 'late_half', 'last', [0, -2]])
def test_hidden_reg_loss_is_the_mean_over_layers(name, loc, impl):
    g = torch.Generator().manual_seed(2)
    hidden = [torch.randn(2, 6, 5, dtype=torch.float64, generator=g).requires_grad_() for _ in range(6)]
    kw = {'tau': 0.7} if 'tau' in OPTIONS[name] else {}
    value = hidden_reg_loss(hidden, name, loc=loc, impl=impl, **kw)
    grads = torch.autograd.grad(value, hidden, allow_unused=True)
    ref = torch.stack([REFERENCES[name](hidden[i], **kw) for i in select_layers(len(hidden), loc)]).mean()
    ref_grads = torch.autograd.grad(ref, hidden, allow_unused=True)
    torch.testing.assert_close(value, ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


# -----------------------------------------------------------------------------
# (e) which one runs: 'auto' by the tokens per sequence the loss sees; an edited definition trains or fails loudly

def imports_of_ours(module):
    """The modules of this repository that module's source imports, at the top or inside functions."""
    ours = {f[:-3] for f in os.listdir(ROOT) if f.endswith('.py')}
    assert {'losses', 'losses_tiled', 'configurator'} <= ours
    tree = ast.parse(open(module.__file__).read())
    imported = {a.name.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split('.')[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert 'torch' in imported
    return imported & ours


def test_losses_py_imports_nothing_of_ours():
    assert imports_of_ours(losses) == set() and imports_of_ours(losses_tiled) == {'losses'}
    # the old spelling names the new home of impl= and fuse=
    hidden = [torch.randn(1, 4, 3)] * 2
    for kw in ({'impl': 'tiled'}, {'fuse': True}):
        with pytest.raises(ValueError, match=r"impl= and fuse= are losses_tiled\.hidden_reg_loss's"):
            losses.hidden_reg_loss(hidden, 'dispersion', **kw)


# the rule, as docs/bench.md states it (CPU measured, CUDA the same rule, unmeasured against the definition)
@pytest.mark.parametrize('device_type', ['cpu', 'cuda'])
@pytest.mark.parametrize('tokens, expected', [(2, 'reference'), (256, 'reference'), (511, 'reference'),
                                              (512, 'tiled'), (1024, 'tiled'), (8192, 'tiled')])
def test_auto_takes_the_fast_path_from_512_tokens_per_sequence(tokens, expected, device_type):
    for name in REGULARIZERS:
        assert losses_tiled.choose_impl(name, 'auto', tokens, device_type) == (expected, None)
        # an explicit choice holds at every size
        assert losses_tiled.choose_impl(name, 'tiled', tokens, device_type) == ('tiled', None)
        assert losses_tiled.choose_impl(name, 'reference', tokens, device_type) == ('reference', None)


def test_auto_counts_the_tokens_the_loss_sees(monkeypatch):
    """T, or max_tokens when the loss subsamples: the paper's 256 of 1024 run the definition."""
    seen = []
    fast = losses_tiled.TILED['dispersion']
    monkeypatch.setitem(losses_tiled.TILED, 'dispersion', lambda z, **kw: seen.append(z.shape[1]) or fast(z, **kw))
    monkeypatch.setitem(losses_tiled.AUTO_MIN_TOKENS, 'cpu', 12)  # small tensors, same rule
    hidden = [torch.randn(2, 12, 5, dtype=torch.float64) for _ in range(3)]
    for max_tokens, T, fast_ran in ((None, 12, True), (12, 12, True), (11, 11, False), (4, 4, False)):
        seen.clear()
        value = hidden_reg_loss(hidden, 'dispersion', max_tokens=max_tokens, generator=torch.Generator().manual_seed(0))
        assert (T in seen) == fast_ran, (max_tokens, seen)
        gen = torch.Generator().manual_seed(0)  # the same tokens, through the naive formula
        z = torch.cat([subsample(h, max_tokens, gen) for h in hidden[1:]])
        torch.testing.assert_close(value, ref_dispersion(z), rtol=1e-12, atol=1e-14)
    # a regularizer with no fast version runs its definition at every size
    assert losses_tiled.choose_impl('uniformity', 'auto', 4096, 'cpu') == ('reference', None)


@pytest.mark.parametrize('name', list(REGULARIZERS))
def test_the_start_up_check_passes_the_definitions_as_written(name):
    extra = {'l2_repel': {'off_diagonal': True}, 'dispersion': {'tau': 0.01}}.get(name, {})  # tau 0.01: amax shift
    for kw in ({}, OPTIONS[name], extra):
        assert losses_tiled.fast_path_mismatch(name, **kw) is None
        assert losses_tiled.choose_impl(name, 'auto', 1024, 'cpu', **kw) == ('tiled', None)


def doubled_tau(z, tau=1.0, clamp=0.1):  # an edited formula: another value
    return dispersion(z, 2 * tau, clamp)


def plain_clamp(z, tau=1.0, clamp=0.1):  # the same values, but no gradient where the clamp acts
    c = losses.cosine_matrix(z).clamp(-1 + clamp, 1 - clamp)
    return losses.log_mean_exp(-torch.arccos(c) / (math.pi * tau), off_diagonal=True)


def with_power(z, tau=1.0, clamp=0.1, power=1.0):  # a new option the fast version does not take
    return dispersion(z, tau, clamp) * power


@pytest.mark.parametrize('edited, what', [(doubled_tau, 'value'), (plain_clamp, 'gradient off'),
                                          (with_power, 'it raises TypeError')])
def test_an_edited_definition_runs_under_auto_and_is_refused_under_tiled(edited, what, monkeypatch):
    monkeypatch.setitem(REGULARIZERS, 'dispersion', edited)
    impl, note = losses_tiled.choose_impl('dispersion', 'auto', 4096, 'cpu', tau=0.5, clamp=0.1)
    assert impl == 'reference' and '\n' not in note
    assert note.startswith("note: reg_impl='auto' trains losses.py's dispersion as written, not the fast path: "
                           f"losses_tiled.dispersion no longer equals it ({what}"), note
    with pytest.raises(ValueError, match=r"^reg_impl='tiled' runs losses_tiled\.dispersion, which no longer equals "
                                         rf"the definition losses\.dispersion \({what}"):
        losses_tiled.choose_impl('dispersion', 'tiled', 16, 'cpu', tau=0.5)
    # through the entry point: 'auto' warns and computes the edited formula (float64, against a naive one)
    monkeypatch.setitem(losses_tiled.AUTO_MIN_TOKENS, 'cpu', 8)
    z = condensed_ish(2, 12, 5, 3)
    with pytest.warns(UserWarning, match="trains losses.py's dispersion as written"):
        value, grad = value_and_grad(loss_fn('dispersion', 'auto'), z, tau=0.5)
    naive = {doubled_tau: lambda z: ref_dispersion(z, tau=1.0),
             plain_clamp: lambda z: torch.log(torch.exp(-off_diagonal(
                 torch.arccos(ref_cos(z).clamp(-0.9, 0.9)) / math.pi) / 0.5).mean(dim=1)).mean(),
             with_power: lambda z: ref_dispersion(z, tau=0.5)}[edited]
    ref_value, ref_grad = value_and_grad(naive, z)
    torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-14)
    with pytest.raises(ValueError, match='no longer equals'):
        loss_fn('dispersion', 'tiled')(z, tau=0.5)


EDIT = ("    return log_mean_exp(-D / tau, off_diagonal=True)\n",  # dispersion's formula in losses.py, and an edit
        "    return log_mean_exp(-D / (2 * tau), off_diagonal=True)\n")


def run_train(root, out_dir, data_dir, *args):
    cmd = [sys.executable, 'train.py', f'--dataset={data_dir}', f'--out_dir={out_dir}', *TINY, '--n_layer=1',
           '--block_size=512', '--batch_size=1', '--max_iters=3', '--eval_interval=100', '--reg=dispersion', *args]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_an_edited_definition_trains_under_the_default_and_tiled_refuses_it(tmp_path, data_dir):
    """A researcher edits dispersion's formula in a copy of the repository and trains with the default reg_impl, at
    T = 512, where 'auto' takes the fast path: the run trains the edited formula, not the one the fast path computes,
    and says so on one line. reg_impl='tiled' refuses, before any write."""
    assert losses_tiled.choose_impl('dispersion', 'auto', 512, 'cpu') == ('tiled', None)
    edited = tmp_path / 'edited'
    edited.mkdir()
    for f in os.listdir(ROOT):
        if f.endswith('.py'):
            shutil.copy(os.path.join(ROOT, f), edited)
    source = (edited / 'losses.py').read_text()
    assert source.count(EDIT[0]) == 1
    (edited / 'losses.py').write_text(source.replace(*EDIT))
    logs, reg = {}, {}
    for key, root in (('fast', ROOT), ('auto', edited)):  # the default reg_impl, unedited and edited
        r = run_train(root, tmp_path / key, data_dir)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        logs[key] = r.stdout
        reg[key] = [m['reg_loss'] for m in metrics(tmp_path / key) if 'reg_loss' in m]
    note = "note: reg_impl='auto' trains losses.py's dispersion as written, not the fast path"
    assert [line for line in logs['auto'].splitlines() if line.startswith(note)], logs['auto'][-2000:]
    assert note not in logs['fast'] and len(reg['auto']) == len(reg['fast']) == 3
    # the same weights at step 1, so only the formula differs: the edited one, log mean exp(-D/2), is about half
    # the other (D's spread is small at the start); then the training differs
    assert reg['auto'][0] == pytest.approx(reg['fast'][0] / 2, rel=0.05)
    assert all(abs(a - b) > 1e-3 for a, b in zip(reg['auto'], reg['fast']))
    ce = {key: [m['train_loss'] for m in metrics(tmp_path / key) if 'train_loss' in m] for key in reg}
    assert ce['auto'][0] == pytest.approx(ce['fast'][0], abs=1e-6) and ce['auto'][1:] != ce['fast'][1:]
    r = run_train(edited, tmp_path / 'tiled', data_dir, '--reg_impl=tiled')
    assert r.returncode == 2 and not (tmp_path / 'tiled').exists()
    assert r.stderr.startswith("error: reg_impl='tiled' runs losses_tiled.dispersion, which no longer equals the "
                               "definition losses.dispersion (value ") and r.stderr.count('\n') == 1, r.stderr


# -----------------------------------------------------------------------------
# (d) l2_repel: the official form, bounded below; the paper's i != j form on request

@pytest.mark.parametrize('impl', IMPLS)
def test_l2_repel_is_the_official_form(impl):
    fn = loss_fn('l2_repel', impl)
    for seed, (B, T, d) in enumerate([(3, 7, 5), (1, 12, 16)]):
        z = condensed_ish(B, T, d, seed) + 2.0  # a shared offset, which distances ignore
        for kw in ({}, {'tau': 3.0, 'norm_coeff': 0.02}):
            value, grad = value_and_grad(fn, z, **kw)
            ref_value, ref_grad = value_and_grad(ref_l2_repel_official, z, **kw)
            torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
            value, grad = value_and_grad(fn, z, off_diagonal=True, **kw)
            ref_value, ref_grad = value_and_grad(ref_l2_repel_off_diagonal, z, **kw)
            torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('impl', IMPLS)
def test_l2_repel_is_bounded_below_by_minus_log_t(impl):
    fn = loss_fn('l2_repel', impl)
    T = 16
    z = torch.randn(2, T, 8, generator=torch.Generator().manual_seed(8))
    kept = [fn(s * z, norm_coeff=0.0).item() for s in (1, 3, 10, 30)]
    pairs_only = [fn(s * z, norm_coeff=0.0, off_diagonal=True).item() for s in (1, 3, 10, 30)]
    # the diagonal's T terms exp(0) = 1 hold it at -log T, which it reaches once the tokens are far apart
    assert all(v >= -math.log(T) - 1e-6 for v in kept), kept
    assert kept[-1] == pytest.approx(-math.log(T), abs=1e-6)
    # without them the loss falls without bound as the tokens spread
    assert all(a > b for a, b in zip(pairs_only, pairs_only[1:])) and pairs_only[-1] < -1000, pairs_only


# -----------------------------------------------------------------------------
# invariances (each asserted only where it holds)

@pytest.mark.parametrize('impl', IMPLS)
def test_invariances(impl):
    g = torch.Generator().manual_seed(3)
    B, T, d = 2, 7, 6
    z = torch.randn(B, T, d, dtype=torch.float64, generator=g) + 0.5
    fns = {name: loss_fn(name, impl) for name in REGULARIZERS}
    values = {name: fn(z).item() for name, fn in fns.items()}

    def check(transformed, names):
        for name in names:
            assert fns[name](transformed).item() == pytest.approx(values[name], abs=1e-12), name

    # each token rescaled by its own positive factor: the angular losses and decorrelation
    scaled = z * (torch.rand(B, T, 1, dtype=torch.float64, generator=g) * 10 + 0.01)
    check(scaled, ANGULAR + ('decorrelation',))
    assert abs(fns['l2_repel'](scaled).item() - values['l2_repel']) > 1e-3  # distances and norms change
    # tokens permuted: every loss (sums over pairs, means over entries)
    check(z[:, torch.randperm(T, generator=g)], REGULARIZERS)
    # feature space rotated: whatever depends only on dot products and norms
    q = random_rotation(d, g)
    check(z @ q, ANGULAR + ('l2_repel',))
    # decorrelation standardizes each token over its features, so it sees the all-ones direction:
    # invariant to permuting features, to shifting a token along (1, ..., 1), and to rotations that
    # fix (1, ..., 1), but not to a general rotation
    check(z[:, :, torch.randperm(d, generator=g)], ('decorrelation',))
    check(z + torch.randn(B, T, 1, dtype=torch.float64, generator=g), ('decorrelation',))
    basis = torch.linalg.qr(torch.cat([torch.ones(d, 1, dtype=torch.float64),
                                       torch.randn(d, d - 1, dtype=torch.float64, generator=g)], 1))[0]
    fixing_ones = basis @ torch.block_diag(torch.ones(1, 1, dtype=torch.float64), random_rotation(d - 1, g)) @ basis.T
    torch.testing.assert_close(fixing_ones @ torch.ones(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64))
    check(z @ fixing_ones, ('decorrelation',))
    assert abs(fns['decorrelation'](z @ q).item() - values['decorrelation']) > 1e-4
    # l2_repel: a shared shift leaves the distances alone; only the norm term moves
    shift = torch.randn(d, dtype=torch.float64, generator=g)
    assert (fns['l2_repel'](z + shift, norm_coeff=0.0).item() ==
            pytest.approx(fns['l2_repel'](z, norm_coeff=0.0).item(), abs=1e-12))


# -----------------------------------------------------------------------------
# degenerate inputs: finite values and gradients, in float32 and bfloat16, and under autocast

def degenerate_inputs():
    g = torch.Generator().manual_seed(4)
    v = torch.randn(1, 1, 8, generator=g)
    mixed = torch.randn(2, 6, 8, generator=g)
    mixed[:, 1] = mixed[:, 0]  # a duplicate
    mixed[:, 2] = -mixed[:, 0]  # an antipode
    mixed[:, 3] = 0  # a zero token
    return {
        'identical': v.expand(2, 6, 8),
        'antipodal': torch.cat([v, -v] * 3, 1).expand(2, 6, 8),
        'zeros': torch.zeros(2, 6, 8),
        'mixed': mixed,
        'constant features': torch.ones(2, 6, 8) * torch.arange(1.0, 7.0)[:, None],
    }


@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
@pytest.mark.parametrize('name', list(REGULARIZERS))
def test_degenerate_inputs_give_finite_values_and_gradients(name, dtype, impl):
    cases = degenerate_inputs()
    fn = loss_fn(name, impl)
    for case, z in cases.items():
        z = z.to(dtype).clone().requires_grad_()
        value = fn(z)
        value.backward()
        assert value.dtype == torch.float32
        assert torch.isfinite(value), (case, value)
        assert z.grad.dtype == dtype and torch.isfinite(z.grad).all(), case
    # a zero token has no direction: the angular losses give it no gradient
    if name in ANGULAR:
        z = cases['mixed'].to(dtype).clone().requires_grad_()
        fn(z).backward()
        assert z.grad[:, 3].abs().max().item() == 0.0
        assert z.grad[:, 4].abs().max().item() > 0.0


@pytest.mark.parametrize('impl', IMPLS)
def test_computed_in_float32_under_bf16_autocast(impl):
    z = torch.randn(2, 9, 16)
    for name in REGULARIZERS:
        fn = loss_fn(name, impl)
        plain = fn(z)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            auto = fn(z)
            direct = REGULARIZERS[name](z)  # the definitions called directly see to it too
        assert auto.dtype == direct.dtype == torch.float32, name
        assert auto.item() == plain.item() and direct.item() == REGULARIZERS[name](z).item(), name
        # bfloat16 hidden states are upcast, not computed in bfloat16
        assert fn(z.bfloat16()).item() == fn(z.bfloat16().float()).item(), name


# -----------------------------------------------------------------------------
# the measured effect: each regularizer alone undoes a condensed start

# l2_repel's diagonal terms (the official form) damp its push as the tokens spread: 200 steps take the mean cosine
# from 0.93 to 0.32, 300 steps to 0.15 (the i != j form is at 0.00 after 100)
@pytest.mark.parametrize('name, threshold, steps', [('dispersion', 0.1, 200), ('orthogonalization', 0.1, 200),
                                                    ('infonce_cos', 0.1, 200), ('l2_repel', 0.2, 300),
                                                    ('decorrelation', 0.2, 200)])
def test_each_regularizer_disperses_a_condensed_start(name, threshold, steps):
    g = torch.Generator().manual_seed(5)
    B, T, d = 2, 32, 16
    u = torch.randn(d, generator=g)
    u = 3 * (u - u.mean()) / (u - u.mean()).norm()  # one shared direction (zero-mean, so cosine ~ correlation)
    z = (u + 0.2 * torch.randn(B, T, d, generator=g)).requires_grad_()
    assert mean_pairwise_cosine(z) > 0.9
    opt = torch.optim.Adam([z], lr=0.03)
    for _ in range(steps):
        opt.zero_grad()
        REGULARIZERS[name](z).backward()
        opt.step()
    # the lowest mean over i != j that T vectors can have is -1/(T-1)
    assert -1 / (T - 1) - 1e-6 <= mean_pairwise_cosine(z) < threshold


# -----------------------------------------------------------------------------
# layer selection, as the official script's disperse_hidden_states

def test_select_layers_even_and_odd_block_counts():
    # GPT-2 small: 12 blocks, 13 hidden states
    assert select_layers(13, 'last') == [12]
    assert select_layers(13, 'all') == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert select_layers(13, 'early_half') == [1, 2, 3, 4, 5, 6]
    assert select_layers(13, 'late_half') == [7, 8, 9, 10, 11, 12]
    # 7 blocks: the odd one out goes to the late half
    assert select_layers(8, 'last') == [7]
    assert select_layers(8, 'all') == [1, 2, 3, 4, 5, 6, 7]
    assert select_layers(8, 'early_half') == [1, 2, 3]
    assert select_layers(8, 'late_half') == [4, 5, 6, 7]
    # 1 block: it is both halves
    assert select_layers(2, 'early_half') == [1]
    assert select_layers(2, 'late_half') == [1]
    assert select_layers(2, 'all') == [1] and select_layers(2, 'last') == [1]
    # explicit indices, negative ones from the end
    assert select_layers(13, [0, 3, -1]) == [0, 3, 12]
    assert select_layers(13, (-13, 5)) == [0, 5]


@pytest.mark.parametrize('bad', ['middle', 'ALL', '', [], [13], [-14], [1, 1], [2, -11], [1.0], [True], 3, None])
def test_select_layers_rejects_bad_loc(bad):
    with pytest.raises(ValueError):
        select_layers(13, bad)


def test_select_layers_error_names_the_choices():
    with pytest.raises(ValueError, match='all, early_half, late_half, last'):
        select_layers(13, 'middle')
    with pytest.raises(ValueError, match='at least 2 hidden states'):
        select_layers(1, 'all')  # no transformer block


# -----------------------------------------------------------------------------
# token subsampling

def test_subsample_picks_the_generators_positions():
    z = torch.randn(3, 20, 6, dtype=torch.float64)
    keep = torch.randperm(20, generator=torch.Generator().manual_seed(11))[:7]
    assert torch.equal(subsample(z, 7, torch.Generator().manual_seed(11)), z[:, keep])
    for name in REGULARIZERS:
        value = hidden_reg_loss([z, z], name, loc='last', max_tokens=7, generator=torch.Generator().manual_seed(11))
        assert value.item() == pytest.approx(REGULARIZERS[name](z[:, keep]).item(), abs=1e-13), name
    # fewer tokens than max_tokens, or None / 0: all of them, and the generator is not touched
    gen = torch.Generator().manual_seed(11)
    for max_tokens in (20, 0, None):
        assert subsample(z, max_tokens, gen) is z
    assert torch.equal(gen.get_state(), torch.Generator().manual_seed(11).get_state())
    # a fresh draw each call
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(subsample(z, 5, gen), subsample(z, 5, gen))


def test_hidden_reg_loss_subsamples_each_layer_in_order():
    hidden = [torch.randn(2, 30, 6, dtype=torch.float64) for _ in range(5)]
    value = hidden_reg_loss(hidden, 'dispersion', max_tokens=9, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    per_layer = [dispersion(subsample(hidden[i], 9, gen)) for i in (1, 2, 3, 4)]
    assert value.item() == pytest.approx(torch.stack(per_layer).mean().item(), abs=1e-13)


@pytest.mark.parametrize('bad', [1, -3, 2.5, True])
def test_max_tokens_rejects_bad_values(bad):
    with pytest.raises(ValueError, match='max_tokens'):
        subsample(torch.randn(2, 10, 4), bad)


@pytest.mark.parametrize('impl', IMPLS)
def test_bad_input_is_a_one_line_error(impl):
    with pytest.raises(ValueError, match=r'\[B, T, d\]'):
        dispersion(torch.randn(10, 4))
    with pytest.raises(ValueError, match='at least 2 tokens'):
        loss_fn('l2_repel', impl)(torch.randn(2, 1, 4))
    with pytest.raises(ValueError, match='tau must be > 0'):
        loss_fn('infonce_cos', impl)(torch.randn(2, 3, 4), tau=0)
    with pytest.raises(ValueError, match='at least 2 features'):
        loss_fn('decorrelation', impl)(torch.randn(2, 3, 1))
    # without a clamp, arccos' is infinite for coinciding tokens: the gradient would not be finite
    for name in ('dispersion', 'orthogonalization'):
        for clamp in (0.0, 1.0):
            with pytest.raises(ValueError, match="clamp must be in"):
                loss_fn(name, impl)(torch.randn(1, 4, 8), clamp=clamp)


# -----------------------------------------------------------------------------
# memory: what the tiled path keeps for backward grows with B*T*d, not B*T^2

def saved_numel(fn):
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = fn()
    return sum(saved), value


@pytest.mark.parametrize('name', list(REGULARIZERS))
def test_saved_for_backward_is_linear_in_tokens(name, monkeypatch):
    monkeypatch.setitem(losses_tiled._TILE_ENTRIES, 'cpu', 2 ** 14)  # a 512 x 512 pair matrix does not fit one tile
    monkeypatch.setattr(losses_tiled, '_KEEP_ENTRIES', 2 ** 14)  # nor is it small enough to be kept whole
    B, T, d = 2, 512, 8
    z = torch.randn(B, T, d, requires_grad=True)
    saved, value = saved_numel(lambda: loss_fn(name, 'tiled')(z))
    # zhat (or the centered tokens), the norms, the log-sums; B*T*T would be 524,288. l2_repel's norm term
    # keeps z as well
    assert saved <= 2 * B * T * d + (B * T * d if name == 'l2_repel' else 0)
    value.backward()
    _, ref_grad = value_and_grad(REFERENCES[name], z.detach().double())
    torch.testing.assert_close(z.grad.double(), ref_grad, rtol=1e-3, atol=1e-6)
    # the definition keeps [B, T, T] matrices
    assert saved_numel(lambda: loss_fn(name, 'reference')(z))[0] >= B * T * T
    # a small pair matrix (here 2 x 64 x 64) is kept from forward, to save backward a matmul
    saved, _ = saved_numel(lambda: loss_fn(name, 'tiled')(z[:, :64]))
    assert 2 * 64 * 64 <= saved <= 2 * 64 * (d + 2) + 2 * 64 * 64 + (2 * 64 * (d + 1) if name == 'l2_repel' else 0)


# -----------------------------------------------------------------------------
# distillation

def ref_distillation(student, teacher, temperature):
    p_teacher = torch.softmax(teacher.double() / temperature, dim=-1)
    log_ratio = (torch.log_softmax(teacher.double() / temperature, -1)
                 - torch.log_softmax(student.double() / temperature, -1))
    return (p_teacher * log_ratio).sum(-1).mean() * temperature ** 2


@pytest.mark.parametrize('temperature', [0.5, 1.0, 2.0])
def test_distillation_matches_float64_reference(temperature):
    g = torch.Generator().manual_seed(6)
    student = (3 * torch.randn(2, 5, 11, generator=g)).requires_grad_()
    teacher = 3 * torch.randn(2, 5, 11, generator=g)
    value = distillation(student, teacher, temperature)
    value.backward()
    ref_student = student.detach().double().requires_grad_()
    ref = ref_distillation(ref_student, teacher, temperature)
    ref.backward()
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(ref.item(), rel=1e-5)
    torch.testing.assert_close(student.grad.double(), ref_student.grad, rtol=1e-4, atol=1e-7)
    # and against torch's own KL with a log target, in float64
    kl = F.kl_div(torch.log_softmax(student.double() / temperature, -1).flatten(0, 1),
                  torch.log_softmax(teacher.double() / temperature, -1).flatten(0, 1),
                  log_target=True, reduction='batchmean') * temperature ** 2
    assert distillation(student.double(), teacher.double(), temperature).item() == pytest.approx(kl.item(), rel=1e-12)


def test_distillation_is_zero_for_matching_logits():
    logits = torch.randn(3, 4, 9)
    assert distillation(logits, logits.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    # a per-token shift does not change a softmax
    assert distillation(logits, logits + torch.randn(3, 4, 1), 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation(logits.bfloat16(), logits.bfloat16(), 1.0).item() == 0.0
    with pytest.raises(ValueError, match='shape'):
        distillation(logits, logits[..., :8])
    with pytest.raises(ValueError, match='temperature'):
        distillation(logits, logits, 0.0)
