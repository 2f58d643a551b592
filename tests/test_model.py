"""Tests of model.py, checkpoint.py and hf_io.py: against Hugging Face transformers (the reference implementation),
closed-form parameter counts, FLOPs and AdamW steps, and the checkpoint format. CPU only, hermetic (tiny
random models saved to tmp dirs).

Run: python -m pytest -q tests/test_model.py
"""
import dataclasses
import json
import os
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

transformers = pytest.importorskip('transformers')
import checkpoint as C  # noqa: E402
import hf_io as H  # noqa: E402
import model as M  # noqa: E402

VOCAB = 101


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    # these models are tiny: on shared, busy cores, extra threads only spin (10x slower); restored afterwards
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def perturb_(hf_model, seed):
    """Move every tensor (norms and biases included) off its init, so a tensor we skipped or misplaced shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in hf_model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return hf_model


def make_hf_gpt2(directory, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=VOCAB, n_positions=24, n_embd=32, n_layer=3, n_head=4, n_inner=80,
               bos_token_id=None, eos_token_id=None, attn_implementation='eager')
    hf = perturb_(transformers.GPT2LMHeadModel(transformers.GPT2Config(**{**cfg, **kw})), seed).eval()
    hf.save_pretrained(directory)
    return hf


def make_hf_qwen3(directory, seed=0, tie=True, **kw):
    torch.manual_seed(seed)
    # GQA (4 query heads share 2 kv heads), head_dim 12 != 32 / 4, a non-default rope_theta
    cfg = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=40, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=2, head_dim=12, max_position_embeddings=64, tie_word_embeddings=tie,
               rope_parameters={'rope_type': 'default', 'rope_theta': 5000.0}, attn_implementation='eager')
    hf = perturb_(transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**{**cfg, **kw})), seed).eval()
    hf.save_pretrained(directory)
    return hf


def batch(T=20, B=2, seed=1):
    idx = torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))
    targets = torch.cat([idx[:, 1:], torch.full((B, 1), -1)], dim=1)  # next token; the last has none
    return idx, targets


def assert_matches_hf(model, hf, T=20):
    idx, targets = batch(T)
    with torch.no_grad():
        logits, loss, hidden = model(idx, targets, return_hidden=True)
        out = hf(idx, labels=idx, output_hidden_states=True)  # HF shifts labels internally
    assert logits.dtype == torch.float32 and len(hidden) == len(out.hidden_states) == len(model.blocks) + 1
    assert_close(logits, out.logits)
    assert_close(loss, out.loss)
    for ours, theirs in zip(hidden, out.hidden_states):
        assert_close(ours, theirs)


# -----------------------------------------------------------------------------
# parity with transformers


def test_gpt2_matches_hf(tmp_path):
    hf = make_hf_gpt2(tmp_path)
    model = H.from_pretrained(str(tmp_path))
    assert isinstance(model, M.GPT) and not model.training
    assert model.config.mlp_hidden == 80 and model.config.block_size == 24
    assert_matches_hf(model, hf)


@pytest.mark.parametrize('tie', [True, False])
def test_qwen3_matches_hf(tmp_path, tie):
    hf = make_hf_qwen3(tmp_path, tie=tie)
    model = H.from_pretrained(str(tmp_path))
    assert isinstance(model, M.Qwen3) and model.config.rope_theta == 5000.0 and model.config.head_dim == 12
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == tie
    assert_matches_hf(model, hf)


def test_qwen3_attention_bias_matches_hf(tmp_path):
    hf = make_hf_qwen3(tmp_path, attention_bias=True)
    assert_matches_hf(H.from_pretrained(str(tmp_path), model_class=M.Qwen3), hf)


def test_bf16_safetensors_load_as_float32(tmp_path):
    hf = make_hf_qwen3(tmp_path / 'fp32')
    hf.to(torch.bfloat16).save_pretrained(tmp_path / 'bf16')
    model = H.from_pretrained(str(tmp_path / 'bf16'))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    expected = hf.model.layers[1].mlp.up_proj.weight.float()
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight, expected)


def test_gpt2_bin_without_prefix_head_and_with_mask_buffers(tmp_path):
    # an old-style checkpoint: pytorch_model.bin, base-model keys without 'transformer.', no lm_head.weight,
    # and the causal-mask buffers that old transformers versions saved
    hf = make_hf_gpt2(tmp_path / 'ref')
    state_dict = {k.removeprefix('transformer.'): v for k, v in hf.state_dict().items() if k != 'lm_head.weight'}
    for i in range(3):
        state_dict[f'h.{i}.attn.bias'] = torch.tril(torch.ones(1, 1, 24, 24))
        state_dict[f'h.{i}.attn.masked_bias'] = torch.tensor(-1e4)
    os.makedirs(tmp_path / 'old')
    torch.save(state_dict, tmp_path / 'old' / 'pytorch_model.bin')
    os.replace(tmp_path / 'ref' / 'config.json', tmp_path / 'old' / 'config.json')
    assert_matches_hf(H.from_pretrained(str(tmp_path / 'old'), model_class=M.GPT), hf)


def test_qwen3_sharded_without_prefix_and_head(tmp_path):
    hf = make_hf_qwen3(tmp_path / 'ref')
    state_dict = {k.removeprefix('model.'): v.clone() for k, v in hf.state_dict().items() if k != 'lm_head.weight'}
    state_dict['layers.0.self_attn.rotary_emb.inv_freq'] = torch.ones(6)  # as some old checkpoints store it
    names = sorted(state_dict)
    shards = {'a.safetensors': names[:len(names) // 2], 'b.safetensors': names[len(names) // 2:]}
    os.makedirs(tmp_path / 'sharded')
    for shard, keys in shards.items():
        save_file({k: state_dict[k] for k in keys}, tmp_path / 'sharded' / shard)
    index = {'weight_map': {k: shard for shard, keys in shards.items() for k in keys}}
    (tmp_path / 'sharded' / 'model.safetensors.index.json').write_text(json.dumps(index))
    os.replace(tmp_path / 'ref' / 'config.json', tmp_path / 'sharded' / 'config.json')
    assert_matches_hf(H.from_pretrained(str(tmp_path / 'sharded')), hf)


def test_bad_weights_raise_naming_the_tensor(tmp_path):
    hf = make_hf_gpt2(tmp_path)
    full = dict(hf.state_dict())
    cases = [({k: v for k, v in full.items() if k != 'transformer.h.1.ln_2.bias'}, 'transformer.h.1.ln_2.bias'),
             ({**full, 'transformer.h.0.attn.extra': torch.zeros(2)}, 'transformer.h.0.attn.extra'),
             ({**full, 'transformer.ln_f.weight': torch.ones(31)}, 'transformer.ln_f.weight'),
             ({**full, 'lm_head.weight': torch.zeros_like(full['lm_head.weight'])}, 'lm_head.weight')]
    for state_dict, name in cases:
        save_file({k: v.clone() for k, v in state_dict.items()}, tmp_path / 'model.safetensors')
        with pytest.raises(ValueError, match=name.replace('.', r'\.')):
            H.from_pretrained(str(tmp_path))


def test_config_json_variants(tmp_path):
    make_hf_qwen3(tmp_path)
    path = tmp_path / 'config.json'
    original = json.loads(path.read_text())

    def load_with(**changes):
        path.write_text(json.dumps({**original, **changes}))
        return H.from_pretrained(str(tmp_path))

    hf4 = {k: v for k, v in original.items() if k not in ('rope_parameters', 'head_dim')}
    path.write_text(json.dumps({**hf4, 'rope_theta': 7000.0}))  # HF4 layout: top-level rope_theta, no head_dim
    with pytest.raises(ValueError, match='shape mismatch'):  # head_dim falls back to 32 / 4 = 8, weights have 12
        H.from_pretrained(str(tmp_path))
    assert H.qwen3_config_from_hf({**hf4, 'rope_theta': 7000.0})['rope_theta'] == 7000.0
    assert H.qwen3_config_from_hf(hf4)['head_dim'] == 8
    with pytest.raises(ValueError, match='sliding'):
        load_with(use_sliding_window=True, sliding_window=4)
    with pytest.raises(ValueError, match='RoPE scaling'):
        load_with(rope_parameters={'rope_type': 'yarn', 'rope_theta': 1e4, 'factor': 4.0})
    with pytest.raises(ValueError, match="unsupported model_type 'llama'.*gpt2, qwen3"):
        load_with(model_type='llama')
    path.write_text(json.dumps(original))
    with pytest.raises(ValueError, match="model_type 'qwen3', not 'gpt2'"):
        H.from_pretrained(str(tmp_path), model_class=M.GPT)
    make_hf_gpt2(tmp_path)
    gpt2 = json.loads(path.read_text())
    path.write_text(json.dumps({**gpt2, 'activation_function': 'relu'}))
    with pytest.raises(ValueError, match="activation_function='relu'"):
        H.from_pretrained(str(tmp_path))


def test_damaged_or_foreign_hf_directory_is_one_line(tmp_path):
    """Each a one-line ValueError naming the file: never a traceback from deep inside json, torch or the model."""
    hf = make_hf_gpt2(tmp_path)
    path = tmp_path / 'config.json'
    original = path.read_text()
    for text, message in [(original[:len(original) // 2], r'could not read .*config\.json: JSONDecodeError: Unterminated'),
                          ('["a", "list"]', r'config\.json: expected a JSON object, got list'),
                          (json.dumps({**json.loads(original), 'n_head': 'four'}),
                           r'config\.json does not describe a GPT: TypeError')]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            H.from_pretrained(str(tmp_path))
        assert '\n' not in str(info.value)
    path.write_text(original)
    os.remove(tmp_path / 'model.safetensors')
    (tmp_path / 'model.safetensors.index.json').write_text('{"metadata": {}}')
    with pytest.raises(ValueError, match="index.json has no 'weight_map'"):
        H.from_pretrained(str(tmp_path))
    os.remove(tmp_path / 'model.safetensors.index.json')
    torch.save([1, 2, 3], tmp_path / 'pytorch_model.bin')  # a torch file, but not of tensors by name
    with pytest.raises(ValueError, match=r'could not read .*pytorch_model\.bin: AttributeError'):
        H.from_pretrained(str(tmp_path))
    torch.save(hf.state_dict(), tmp_path / 'pytorch_model.bin', _use_new_zipfile_serialization=False)
    assert_matches_hf(H.from_pretrained(str(tmp_path)), hf)  # the legacy format itself loads (weights only)


def test_overrides(tmp_path):
    make_hf_gpt2(tmp_path)
    full = H.from_pretrained(str(tmp_path))
    short = H.from_pretrained(str(tmp_path), dropout=0.1, block_size=12)  # wpe cropped to the shorter context
    assert short.config.dropout == 0.1 and short.transformer.wpe.weight.shape == (12, 32)
    idx, _ = batch(T=12)
    with torch.no_grad():
        assert torch.equal(short(idx)[0], full(idx)[0])
    with pytest.raises(ValueError, match='sequence length 13'):
        short(batch(T=13)[0])
    with pytest.raises(ValueError, match='n_embed'):
        H.from_pretrained(str(tmp_path), n_embed=64)


def test_hub_id_offline_is_one_line_error():
    assert os.environ.get('HF_HUB_OFFLINE') == '1'
    with pytest.raises(ValueError) as info:
        H.from_pretrained('gpt2-this-repo-is-not-cached')
    message = str(info.value)
    assert '\n' not in message and message.startswith("could not download 'gpt2-this-repo-is-not-cached'")
    assert 'save_pretrained' in message


# -----------------------------------------------------------------------------
# export


def gpt_tiny(**kw):
    return M.GPTConfig(**{**dict(block_size=24, vocab_size=VOCAB, n_layer=2, n_head=4, n_embd=32), **kw})


def qwen3_tiny(**kw):
    return M.Qwen3Config(**{**dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=12,
                                   max_position_embeddings=64, rope_theta=1e4), **kw})


@pytest.mark.parametrize('make', [lambda: M.GPT(gpt_tiny(mlp_hidden=48)), lambda: M.GPT(gpt_tiny(bias=False)),
                                  lambda: M.Qwen3(qwen3_tiny()),
                                  lambda: M.Qwen3(qwen3_tiny(tie_word_embeddings=False))],
                         ids=['gpt', 'gpt-nobias', 'qwen3', 'qwen3-untied'])
def test_to_hf_and_back(tmp_path, make):
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    hf = H.to_hf(model)
    assert not hf.training and next(hf.parameters()).dtype == torch.float32
    assert_matches_hf(model, hf)
    hf.save_pretrained(tmp_path)
    reloaded = H.from_pretrained(str(tmp_path))
    idx, _ = batch()
    with torch.no_grad():
        assert torch.equal(reloaded(idx)[0], model(idx)[0])


# -----------------------------------------------------------------------------
# sizes


def mlp_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if '.mlp.' in n)


def test_mlp_width_knob_changes_only_the_mlp():
    d, L, h = 32, 2, 56
    for base, wide, per_layer in [(M.GPT(gpt_tiny()), M.GPT(gpt_tiny(mlp_hidden=h)), 2 * d * h + h + d),
                                  (M.Qwen3(qwen3_tiny()), M.Qwen3(qwen3_tiny(intermediate_size=h)), 3 * d * h)]:
        assert mlp_params(wide) == L * per_layer
        other = {n: p.shape for n, p in base.named_parameters() if '.mlp.' not in n}
        assert other == {n: p.shape for n, p in wide.named_parameters() if '.mlp.' not in n}
        assert wide.num_params() - base.num_params() == mlp_params(wide) - mlp_params(base)
    assert mlp_params(M.GPT(gpt_tiny())) == L * (2 * d * 4 * d + 4 * d + d)  # None = 4 * n_embd


def test_param_counts_of_released_models():
    with torch.device('meta'):  # shapes only, no memory
        gpt2, qwen = M.GPT(M.GPTConfig()), M.Qwen3(M.Qwen3Config())
        hf_qwen = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(
            vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
            num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True))
    assert gpt2.num_params() == 124_439_808  # HF's gpt2
    d, L = 768, 12
    assert gpt2.num_params(non_embedding=True) == L * (12 * d * d + 13 * d) + 2 * d
    # nanoGPT's estimate_mfu: 6 N + 12 L H Q T, with N = all params but wpe (wte counts, as the lm_head)
    assert gpt2.flops_per_token(1024) == 6 * (124_439_808 - 1024 * d) + 12 * L * d * 1024
    assert qwen.num_params() == sum(p.numel() for p in hf_qwen.parameters())
    assert round(qwen.num_params(non_embedding=True) / 1e9, 2) == 0.44  # Qwen3-0.6B model card


# -----------------------------------------------------------------------------
# build_model, optimizer groups, MFU


def test_build_model_is_the_explicit_config():
    # the released shapes: GPT-2 small, and Qwen3-0.6B, whose intermediate_size 3072 is 3 * 1024 (mlp_hidden=None)
    with torch.device('meta'):
        assert M.build_model('gpt', 50257, 1024, 12, 12, 768).config == M.GPTConfig()
        assert M.build_model('qwen3', 151936, 40960, 28, 16, 1024, n_kv_head=8, head_dim=128).config == M.Qwen3Config()
    # a small run's shape: same weights for the same seed as the classes built by hand, same parameter count
    cases = [(dict(arch='gpt', mlp_hidden=48, bias=False, dropout=0.1),
              M.GPT, M.GPTConfig(block_size=24, vocab_size=VOCAB, n_layer=2, n_head=4, n_embd=32, mlp_hidden=48,
                                 bias=False, dropout=0.1)),
             (dict(arch='qwen3', n_kv_head=2, rope_theta=1e4),
              M.Qwen3, M.Qwen3Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=96, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                                     max_position_embeddings=24, rope_theta=1e4))]
    for kw, cls, config in cases:
        torch.manual_seed(0)
        built = M.build_model(vocab_size=VOCAB, block_size=24, n_layer=2, n_head=4, n_embd=32, **kw)
        torch.manual_seed(0)
        by_hand = cls(config)
        assert type(built) is cls and built.arch == kw['arch'] and built.config == config
        assert built.state_dict().keys() == by_hand.state_dict().keys()
        assert all(torch.equal(v, by_hand.state_dict()[k]) for k, v in built.state_dict().items())
    d, L, V = 32, 2, VOCAB  # qwen3 above: q, o 32x32; k, v 32x16; SwiGLU 3 x 32x96; 4 norms of 32 or 8; tied
    assert built.num_params() == L * (2 * d * d + 2 * d * 16 + 3 * d * 96 + 2 * d + 2 * 8) + d + V * d == 28_000
    with pytest.raises(ValueError, match=r"unknown arch 'llama' \(choose from: gpt, qwen3\)"):
        M.build_model('llama', VOCAB, 24, 2, 4, 32)


def param_names(model, params):
    names = {id(p): n for n, p in model.named_parameters()}  # a tied weight appears once, by its first name
    return sorted(names[id(p)] for p in params)


GPT_DECAY = ['transformer.wpe.weight', 'transformer.wte.weight'] + [
    f'transformer.h.{i}.{m}.weight' for i in range(2) for m in ('attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj')]
GPT_NO_DECAY = ['transformer.ln_f.bias', 'transformer.ln_f.weight'] + [
    f'transformer.h.{i}.{m}' for i in range(2) for m in (
        'ln_1.weight', 'ln_1.bias', 'ln_2.weight', 'ln_2.bias',
        'attn.c_attn.bias', 'attn.c_proj.bias', 'mlp.c_fc.bias', 'mlp.c_proj.bias')]
QWEN3_DECAY = ['model.embed_tokens.weight'] + [
    f'model.layers.{i}.{m}.weight' for i in range(2) for m in (
        'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
        'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj')]
QWEN3_NO_DECAY = ['model.norm.weight'] + [
    f'model.layers.{i}.{m}.weight' for i in range(2) for m in (
        'input_layernorm', 'post_attention_layernorm', 'self_attn.q_norm', 'self_attn.k_norm')]


@pytest.mark.parametrize('make, decay, no_decay', [
    (lambda: M.GPT(gpt_tiny()), GPT_DECAY, GPT_NO_DECAY),  # lm_head is wte: in no group a second time
    (lambda: M.Qwen3(qwen3_tiny()), QWEN3_DECAY, QWEN3_NO_DECAY),
    (lambda: M.Qwen3(qwen3_tiny(tie_word_embeddings=False)), QWEN3_DECAY + ['lm_head.weight'], QWEN3_NO_DECAY)],
    ids=['gpt', 'qwen3', 'qwen3-untied'])
def test_configure_optimizers_groups(make, decay, no_decay):
    model = make()
    opt = model.configure_optimizers(0.1, 3e-4, (0.8, 0.9), 'cpu')
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults['fused'] is False
    assert model.configure_optimizers(0.1, 3e-4, (0.8, 0.9), 'cuda').defaults['fused'] is True  # one kernel
    assert [g['weight_decay'] for g in opt.param_groups] == [0.1, 0.0]
    assert all(g['lr'] == 3e-4 and g['betas'] == (0.8, 0.9) for g in opt.param_groups)
    assert param_names(model, opt.param_groups[0]['params']) == sorted(decay)
    assert param_names(model, opt.param_groups[1]['params']) == sorted(no_decay)
    # what the groups do: with zero gradients Adam's step is 0, so AdamW only decays: p <- p * (1 - lr * wd)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[n] * (1 - 3e-4 * 0.1) if n in decay else before[n],
                                   rtol=0, atol=1e-9)


def test_configure_optimizers_own_group():
    model = M.GPT(gpt_tiny())
    embedding = model.get_input_embeddings().weight
    opt = model.configure_optimizers(0.1, 3e-4, (0.9, 0.95), 'cpu', own_group=embedding)
    assert [g['weight_decay'] for g in opt.param_groups] == [0.1, 0.0, 0.1]
    assert [g.get('own_group', False) for g in opt.param_groups] == [False, False, True]
    assert opt.param_groups[2]['params'] == [embedding]
    assert param_names(model, opt.param_groups[0]['params']) == sorted(set(GPT_DECAY) - {'transformer.wte.weight'})
    assert sum(p.numel() for g in opt.param_groups for p in g['params']) == model.num_params()  # each once
    with pytest.raises(ValueError, match='own_group must be a parameter of this model'):
        model.configure_optimizers(0.1, 3e-4, (0.9, 0.95), 'cpu', own_group=torch.nn.Parameter(torch.zeros(3)))


def test_estimate_mfu():
    gpt, qwen = M.GPT(gpt_tiny()), M.Qwen3(qwen3_tiny())
    # 6 * (non-embedding params + the lm_head matrix) + 12 * n_layer * attention width * T, at T = 16
    d, L, V, T = 32, 2, VOCAB, 16
    gpt_flops = 6 * (L * (12 * d * d + 13 * d) + 2 * d + V * d) + 12 * L * d * T
    # qwen3_tiny: q and o 32x48, k and v 32x24, SwiGLU 3 x 32x40, norms 2 x 32 + 2 x 12 per layer; 4 heads x 12
    qwen_flops = 6 * (L * (2 * d * 48 + 2 * d * 24 + 3 * d * 40 + 2 * d + 2 * 12) + d + V * d) + 12 * L * 48 * T
    assert (gpt.flops_per_token(T), qwen.flops_per_token(T)) == (gpt_flops, qwen_flops) == (184_512, 140_448)
    peaks = {'NVIDIA H100 80GB HBM3': 989e12, 'NVIDIA H100 PCIe': 756e12, 'NVIDIA H200': 989e12,
             'NVIDIA H200 NVL': 835e12, 'NVIDIA A100-SXM4-80GB': 312e12, 'NVIDIA A100 80GB PCIe': 312e12,
             'NVIDIA L4': 121e12, 'NVIDIA A10': 125e12}
    for name, peak in peaks.items():
        assert gpt.estimate_mfu(2e9, T, name) == pytest.approx(gpt_flops * 2e9 / peak, rel=1e-12)
        assert qwen.estimate_mfu(2e9, T, name) == pytest.approx(qwen_flops * 2e9 / peak, rel=1e-12)
    assert gpt.estimate_mfu(2e9, T, 'NVIDIA H100 80GB HBM3') == pytest.approx(0.37313, abs=1e-5)
    for unknown in ('cpu', 'mps', 'NVIDIA A10G', 'NVIDIA L40S', 'NVIDIA GeForce RTX 4090'):
        assert gpt.estimate_mfu(2e9, T, unknown) is None


# -----------------------------------------------------------------------------
# training sanity and checkpoints


@pytest.mark.parametrize('model', [M.GPT(gpt_tiny()), M.Qwen3(qwen3_tiny())], ids=['gpt', 'qwen3'])
def test_overfits_one_batch(model):
    torch.manual_seed(0)
    idx, targets = batch(T=16, B=4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    first = None
    for step in range(150):
        _, loss = model(idx, targets)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(first - np.log(VOCAB)) < 0.3  # small init: near-uniform predictions at the start
    assert loss.item() < 0.1


def test_load_checkpoint_roundtrip(tmp_path):
    model = M.Qwen3(qwen3_tiny(tie_word_embeddings=False))
    ckpt = {'arch': model.arch, 'model_args': dataclasses.asdict(model.config), 'model': model.state_dict(),
            'optimizer': torch.optim.AdamW(model.parameters()).state_dict(), 'step': 7, 'config': {'seed': 1},
            'data_meta': {'tokenizer': 'byte', 'dtype': 'uint16', 'vocab_size': 257, 'eot_token': 256},
            'rng': {'torch': torch.get_rng_state()}, 'data_position': 123}
    torch.save(ckpt, tmp_path / 'ckpt.pt')
    loaded, got = C.load_checkpoint(str(tmp_path))
    assert isinstance(loaded, M.Qwen3) and not loaded.training and got['step'] == 7 and got['data_position'] == 123
    idx, _ = batch()
    with torch.no_grad():
        assert torch.equal(loaded(idx)[0], model(idx)[0])
    # numpy's and Python's RNG states are objects, not tensors: such a file loads only when trusted
    ckpt['rng'].update(numpy=np.random.get_state(), python=random.getstate())
    torch.save(ckpt, tmp_path / 'ckpt.pt')
    with pytest.raises(ValueError, match=r'\(GLOBAL numpy\.[\w.]+\), so it is not loaded.*--trust_checkpoint=True'):
        C.load_checkpoint(str(tmp_path))
    loaded, got = C.load_checkpoint(str(tmp_path), trust_checkpoint=True)
    assert got['rng']['python'] == random.getstate()
    with torch.no_grad():
        assert torch.equal(loaded(idx)[0], model(idx)[0])
    gpt = M.GPT(gpt_tiny())
    torch.save({'arch': 'gpt', 'model_args': dataclasses.asdict(gpt.config), 'model': gpt.state_dict(), 'step': 2},
               tmp_path / 'ckpt_000002.pt')
    loaded, _ = C.load_checkpoint(str(tmp_path / 'ckpt_000002.pt'))
    with torch.no_grad():
        assert torch.equal(loaded(idx)[0], gpt(idx)[0])


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='no checkpoint at .*ckpt.pt'):
        C.load_checkpoint(str(tmp_path))
    gpt = M.GPT(gpt_tiny())
    torch.save({'arch': 'gpt', 'model_args': dataclasses.asdict(gpt.config), 'model': gpt.state_dict()},
               tmp_path / 'ckpt.pt')
    data = (tmp_path / 'ckpt.pt').read_bytes()
    (tmp_path / 'ckpt.pt').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='is damaged or not a torch file') as info:
        C.load_checkpoint(str(tmp_path))
    assert '\n' not in str(info.value)
    torch.save({'model': gpt.state_dict()}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match="not a train.py checkpoint: it is not a dict with 'arch'"):
        C.load_checkpoint(str(tmp_path / 'other.pt'))
    torch.save({'arch': 'llama', 'model_args': {}, 'model': {}}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match="not a train.py checkpoint: unknown arch 'llama'"):
        C.load_checkpoint(str(tmp_path / 'other.pt'))
    torch.save({'arch': 'gpt', 'model_args': dataclasses.asdict(gpt.config), 'model': {'w': 3}}, tmp_path / 'other.pt')
    with pytest.raises(ValueError, match="'model' is not a dict of tensors"):
        C.load_checkpoint(str(tmp_path / 'other.pt'))
