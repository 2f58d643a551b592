"""
The two model families of the paper, GPT-2 and Qwen3, with weight import from / export to Hugging Face.

    from model import from_pretrained, load_checkpoint, GPT, GPTConfig
    model = from_pretrained('gpt2')            # or 'Qwen/Qwen3-0.6B', or a local directory saved by save_pretrained
    logits, loss, hidden = model(idx, targets, return_hidden=True)
    model, ckpt = load_checkpoint('out/')      # the ckpt.pt of a train.py run
    hf_model = model.to_hf()                   # transformers GPT2LMHeadModel / Qwen3ForCausalLM, same weights

Module names are Hugging Face's, so our state-dict keys are theirs (for GPT-2 after transposing its four
Conv1D weights). The model knows nothing about training: forward computes the next-token loss (nanoGPT's
contract); every auxiliary loss lives in losses.py. Tests: python -m pytest -q tests/test_model.py
"""

import json
import math
import os
import pickle
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
from torch.nn import functional as F

# -----------------------------------------------------------------------------
# GPT-2: LayerNorm, learned positions, GELU MLP, biases everywhere


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50257
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # embedding, attention and residual dropout (HF's embd/attn/resid_pdrop, 0.1 in GPT-2)
    bias: bool = True  # biases in Linears and LayerNorms, as GPT-2
    mlp_hidden: int = None  # MLP width; None = 4 * n_embd. The knob of the paper's MLP-width study (Figure 3)
    layer_norm_eps: float = 1e-5


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in that order
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.dropout = config.dropout

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        # SDPA drops attention weights like HF's attn_dropout; scale 1/sqrt(hs) is its default
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden = config.mlp_hidden if config.mlp_hidden is not None else 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        # the tanh approximation is GPT-2's (HF 'gelu_new'); nanoGPT's exact erf GELU would not match its weights
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate='tanh')))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

# -----------------------------------------------------------------------------
# Qwen3: RMSNorm, RoPE, grouped-query attention with per-head q/k RMSNorm, SwiGLU MLP


@dataclass
class Qwen3Config:  # field names are those of HF's config.json; defaults are Qwen3-0.6B's
    vocab_size: int = 151936
    hidden_size: int = 1024
    intermediate_size: int = 3072  # SwiGLU hidden width, used exactly (no 2/3 rounding): the MLP-width knob
    num_hidden_layers: int = 28
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128  # independent of hidden_size: in 0.6B, q_proj maps 1024 -> 16 * 128 = 2048
    max_position_embeddings: int = 40960
    rope_theta: float = 1e6
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True  # true up to Qwen3-4B, false from 8B
    attention_bias: bool = False
    dropout: float = 0.0  # attention dropout only: HF's Qwen3 has no embedding or residual dropout
    initializer_range: float = 0.02


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        # as HF: normalize in float32, cast back to the input dtype, THEN scale (the order matters under bf16)
        xf = x.float()
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def rope_cos_sin(T, head_dim, theta, device):
    """cos, sin of shape (T, head_dim) for positions 0..T-1. Always float32: bf16 cannot hold every integer
    position past 256. Computed per forward (a few kernels), so there is no buffer for .to(dtype) to spoil."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    freqs = torch.arange(T, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]  # (T, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # non-interleaved ("NeoX") layout: dim i pairs with dim i + hd/2
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):  # x (B, nh, T, hd)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Qwen3Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = (
            config.num_attention_heads, config.num_key_value_heads, config.head_dim)
        d, bias = config.hidden_size, config.attention_bias
        self.q_proj = nn.Linear(d, self.n_head * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(d, self.n_kv_head * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(d, self.n_kv_head * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.n_head * self.head_dim, d, bias=bias)
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)  # per head, over head_dim
        self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        self.dropout = config.dropout

    def forward(self, x, cos, sin):
        B, T, _ = x.size()
        # q/k norms come BEFORE rope, as in HF; v is not normed
        q = self.q_norm(self.q_proj(x).view(B, T, self.n_head, self.head_dim)).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_norm(self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim)).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # enable_gqa: kv head j serves query heads j*n_rep .. (j+1)*n_rep-1, the order of HF's repeat_kv
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True, enable_gqa=self.n_kv_head != self.n_head)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))


class Qwen3MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen3Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Qwen3Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = Qwen3MLP(config)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))

# -----------------------------------------------------------------------------
# what both share: the loop over blocks, lm_head, the loss, loading Hugging Face weights


class LanguageModel(nn.Module):
    """Base of GPT and Qwen3. A subclass provides `embed(idx) -> (x, extra block args)`, `blocks`, `final_norm`,
    `lm_head`, and the Hugging Face mapping (`config_from_hf`, `state_dict_from_hf`, `to_hf`)."""

    def hidden_states(self, idx):
        """The n_layer + 1 hidden states [B, T, C] without the lm_head (what measure.py needs: the logits would
        cost a third of GPT-2's FLOPs). HF's output_hidden_states convention: hidden[0] is the embedding, the
        last entry is AFTER the final norm (the raw output of the last block is not kept)."""
        T = idx.size(1)
        if T > self.max_seq_len:
            raise ValueError(f"sequence length {T} exceeds the model's context length {self.max_seq_len}")
        x, extra = self.embed(idx)  # (B, T, C)
        hidden = [x]
        for block in self.blocks:
            x = block(x, *extra)
            hidden.append(x)
        hidden[-1] = self.final_norm(x)
        return hidden

    def forward(self, idx, targets=None, return_hidden=False):
        hidden = self.hidden_states(idx)
        logits = self.lm_head(hidden[-1]).float()  # (B, T, vocab), float32 even under autocast, for a stable loss
        loss = None
        if targets is not None:  # targets are already shifted: the next token of each position, -1 = ignore
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return (logits, loss, hidden) if return_hidden else (logits, loss)

    def num_params(self, non_embedding=False):
        """Parameters, tied ones counted once. non_embedding=True leaves out every embedding table and lm_head
        (Kaplan et al.'s N, the 'non-embedding' count of model cards: 85M for gpt2, 0.44B for Qwen3-0.6B)."""
        params = {id(p): p for p in self.parameters()}
        if non_embedding:
            for table in [self.lm_head, *(m for m in self.modules() if isinstance(m, nn.Embedding))]:
                params.pop(id(table.weight), None)
        return sum(p.numel() for p in params.values())

    def flops_per_token(self, seq_len):
        """Training FLOPs per token, for MFU: 6 per matmul weight (2 forward, 4 backward), lm_head included,
        plus 12 * n_layer * d_attn * seq_len for the attention scores and the weighted sum of values (PaLM,
        appendix B, as nanoGPT's estimate_mfu; the causal mask's saving is ignored, as there)."""
        vocab, d = self.lm_head.weight.shape
        n_matmul = self.num_params(non_embedding=True) + vocab * d
        return 6 * n_matmul + 12 * len(self.blocks) * self.attn_width * seq_len

    @classmethod
    def from_pretrained(cls, name_or_path, **overrides):
        """A hub id or a local HF directory (config.json + weights) -> our model, float32, eval mode.
        overrides set config fields, e.g. dropout=0.1 (HF's dropout is not read) or a smaller context."""
        directory = _hf_directory(name_or_path)
        hf_config = _read_hf_config(directory)
        if hf_config.get('model_type') != cls.model_type:
            raise ValueError(f"{directory} holds model_type '{hf_config.get('model_type')}', not '{cls.model_type}'")
        config = cls.config_class(**cls.config_from_hf(hf_config))
        unknown = sorted(set(overrides) - set(config.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown {cls.config_class.__name__} field(s) {unknown} in overrides")
        model = cls(replace(config, **overrides))
        load_exact(model, model.state_dict_from_hf(_read_hf_weights(directory)), directory)
        return model.eval()


def load_exact(model, state_dict, source):
    """Load every tensor of `model` from state_dict, with no tensor missing, extra or of another shape."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
             for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    for what, names in (('missing', missing), ('unexpected', unexpected), ('shape mismatch', wrong)):
        if names:
            more = f" (+{len(names) - 3} more)" if len(names) > 3 else ''
            raise ValueError(f"{source}: {what} tensor(s): {', '.join(names[:3])}{more}")
    model.load_state_dict(state_dict, strict=True)  # copies into our float32 parameters


def _tied_head(state_dict, embed_key, source):
    # a tied checkpoint may store lm_head.weight or not (HF >= 5 does not); if it does, it must be the embedding
    if embed_key in state_dict:
        head = state_dict.setdefault('lm_head.weight', state_dict[embed_key])
        if not torch.equal(head, state_dict[embed_key]):
            raise ValueError(f"{source}: lm_head.weight differs from {embed_key} but the config ties them")
    return state_dict

# -----------------------------------------------------------------------------


class GPT(LanguageModel):
    model_type = 'gpt2'  # config.json's
    config_class = GPTConfig
    conv1d = ('attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight')  # HF: [in, out]

    def __init__(self, config):
        super().__init__()
        if config.n_embd % config.n_head:
            raise ValueError(f"n_embd={config.n_embd} is not divisible by n_head={config.n_head}")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as GPT-2
        self.attn_width = config.n_embd
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        """GPT-2's init (as nanoGPT):
        transformer.wte.weight (= lm_head.weight), transformer.wpe.weight: normal(0, 0.02)
        h.{i}.attn.c_attn.weight, h.{i}.mlp.c_fc.weight: normal(0, 0.02)
        h.{i}.attn.c_proj.weight, h.{i}.mlp.c_proj.weight: normal(0, 0.02 / sqrt(2 * n_layer)), as each block
            adds two outputs to the residual stream (GPT-2 paper, section 2.3)
        every Linear bias: zeros; ln_1, ln_2, ln_f: weight ones, bias zeros"""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, (nn.Linear, nn.LayerNorm)) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
        for block in self.transformer.h:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def get_input_embeddings(self):
        return self.transformer.wte

    def embed(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos)), ()

    blocks = property(lambda self: self.transformer.h)
    final_norm = property(lambda self: self.transformer.ln_f)
    max_seq_len = property(lambda self: self.config.block_size)

    @staticmethod
    def config_from_hf(hf):
        for key, supported in [('activation_function', 'gelu_new'), ('scale_attn_weights', True),
                               ('scale_attn_by_inverse_layer_idx', False), ('add_cross_attention', False),
                               ('tie_word_embeddings', True)]:
            if hf.get(key, supported) != supported:
                raise ValueError(f"GPT-2 config.json has {key}={hf[key]!r}; only {supported!r} is supported")
        return dict(block_size=hf.get('n_positions', 1024), vocab_size=_need(hf, 'vocab_size'),
                    n_layer=_need(hf, 'n_layer'), n_head=_need(hf, 'n_head'), n_embd=_need(hf, 'n_embd'),
                    mlp_hidden=hf.get('n_inner'), layer_norm_eps=hf.get('layer_norm_epsilon', 1e-5))

    def state_dict_from_hf(self, hf_state_dict):
        state_dict = {}
        for key, tensor in hf_state_dict.items():
            if key.endswith(('.attn.bias', '.attn.masked_bias')):
                continue  # causal-mask buffers of old checkpoints, not weights
            if key != 'lm_head.weight' and not key.startswith('transformer.'):
                key = 'transformer.' + key  # base-model checkpoints (GPT2Model) lack the prefix
            state_dict[key] = tensor.t() if key.endswith(self.conv1d) else tensor
        wpe = state_dict.get('transformer.wpe.weight')
        if wpe is not None and wpe.size(0) > self.config.block_size:  # a smaller block_size was asked for
            state_dict['transformer.wpe.weight'] = wpe[:self.config.block_size]
        return _tied_head(state_dict, 'transformer.wte.weight', 'GPT-2 weights')

    def to_hf(self):
        """The equivalent transformers GPT2LMHeadModel (float32, CPU, eval). bias=False exports zero biases."""
        from transformers import GPT2Config, GPT2LMHeadModel
        c = self.config
        eot = 50256 if c.vocab_size > 50256 else None  # GPT-2's <|endoftext|>, when the vocabulary has it
        hf_config = GPT2Config(
            vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
            n_inner=c.mlp_hidden, activation_function='gelu_new', resid_pdrop=c.dropout, embd_pdrop=c.dropout,
            attn_pdrop=c.dropout, layer_norm_epsilon=c.layer_norm_eps, tie_word_embeddings=True,
            bos_token_id=eot, eos_token_id=eot, attn_implementation='sdpa')
        hf_model = GPT2LMHeadModel(hf_config)
        state_dict = {k: v.t() if k.endswith(self.conv1d) else v for k, v in self.state_dict().items()}
        for k, v in hf_model.state_dict().items():
            state_dict.setdefault(k, torch.zeros_like(v))  # only the biases, when bias=False
        hf_model.load_state_dict({k: v.detach().float().cpu() for k, v in state_dict.items()}, strict=True)
        return hf_model.eval()


class Qwen3(LanguageModel):
    model_type = 'qwen3'
    config_class = Qwen3Config

    def __init__(self, config):
        super().__init__()
        if config.num_attention_heads % config.num_key_value_heads or config.head_dim % 2:
            raise ValueError(f"need num_attention_heads ({config.num_attention_heads}) divisible by num_key_value_heads"
                             f" ({config.num_key_value_heads}) and an even head_dim ({config.head_dim})")
        self.config = config
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(config.vocab_size, config.hidden_size),
            layers=nn.ModuleList([Qwen3Block(config) for _ in range(config.num_hidden_layers)]),
            norm=RMSNorm(config.hidden_size, config.rms_norm_eps),
        ))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.attn_width = config.num_attention_heads * config.head_dim
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        """HF Qwen3's init:
        model.embed_tokens.weight, lm_head.weight (unless tied): normal(0, initializer_range)
        layers.{i}.self_attn.{q,k,v,o}_proj.weight, layers.{i}.mlp.{gate,up,down}_proj.weight: same normal
        their biases (attention_bias=True only): zeros
        input_layernorm, post_attention_layernorm, self_attn.q_norm, self_attn.k_norm, model.norm: ones"""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=self.config.initializer_range)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def embed(self, idx):
        cos, sin = rope_cos_sin(idx.size(1), self.config.head_dim, self.config.rope_theta, idx.device)
        return self.model.embed_tokens(idx), (cos, sin)  # no embedding scaling, no dropout

    blocks = property(lambda self: self.model.layers)
    final_norm = property(lambda self: self.model.norm)
    max_seq_len = property(lambda self: self.config.max_position_embeddings)

    @staticmethod
    def config_from_hf(hf):
        if hf.get('use_sliding_window'):
            raise ValueError("Qwen3 config.json enables sliding-window attention (use_sliding_window); not supported")
        if hf.get('hidden_act', 'silu') != 'silu':
            raise ValueError(f"Qwen3 config.json has hidden_act={hf['hidden_act']!r}; only 'silu' is supported")
        rope = hf.get('rope_parameters') or {}  # HF5 nests rope_theta here; HF4 configs have it at the top level
        if rope.get('rope_type', 'default') != 'default' or hf.get('rope_scaling'):
            raise ValueError("Qwen3 config.json asks for RoPE scaling; only plain RoPE is supported")
        hidden, heads = _need(hf, 'hidden_size'), _need(hf, 'num_attention_heads')
        return dict(vocab_size=_need(hf, 'vocab_size'), hidden_size=hidden,
                    intermediate_size=_need(hf, 'intermediate_size'), num_hidden_layers=_need(hf, 'num_hidden_layers'),
                    num_attention_heads=heads, num_key_value_heads=hf.get('num_key_value_heads') or heads,
                    head_dim=hf.get('head_dim') or hidden // heads,
                    max_position_embeddings=hf.get('max_position_embeddings', 32768),
                    rope_theta=float(rope.get('rope_theta', hf.get('rope_theta', 10000.0))),  # 1e4: HF's default
                    rms_norm_eps=hf.get('rms_norm_eps', 1e-6), tie_word_embeddings=hf.get('tie_word_embeddings', False),
                    attention_bias=hf.get('attention_bias', False), initializer_range=hf.get('initializer_range', 0.02))

    def state_dict_from_hf(self, hf_state_dict):
        state_dict = {}
        for key, tensor in hf_state_dict.items():
            if key.endswith('rotary_emb.inv_freq'):
                continue  # a buffer recomputed from rope_theta, stored by old checkpoints
            if key != 'lm_head.weight' and not key.startswith('model.'):
                key = 'model.' + key  # base-model checkpoints (Qwen3Model) lack the prefix
            state_dict[key] = tensor
        if self.config.tie_word_embeddings:
            state_dict = _tied_head(state_dict, 'model.embed_tokens.weight', 'Qwen3 weights')
        return state_dict

    def to_hf(self):
        """The equivalent transformers Qwen3ForCausalLM (float32, CPU, eval)."""
        from transformers import Qwen3Config as HFQwen3Config, Qwen3ForCausalLM
        c = self.config
        hf_config = HFQwen3Config(
            vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
            num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
            max_position_embeddings=c.max_position_embeddings,
            rope_parameters={'rope_type': 'default', 'rope_theta': c.rope_theta}, rms_norm_eps=c.rms_norm_eps,
            tie_word_embeddings=c.tie_word_embeddings, attention_bias=c.attention_bias, attention_dropout=c.dropout,
            initializer_range=c.initializer_range, use_sliding_window=False, attn_implementation='sdpa')
        hf_model = Qwen3ForCausalLM(hf_config)
        hf_model.load_state_dict({k: v.detach().float().cpu() for k, v in self.state_dict().items()}, strict=True)
        return hf_model.eval()

# -----------------------------------------------------------------------------
# reading Hugging Face directories, and our own checkpoints

HF_WEIGHTS = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json']


def _need(hf_config, key):
    if key not in hf_config:
        raise ValueError(f"config.json lacks '{key}'")
    return hf_config[key]


def _hf_directory(name_or_path):
    """A local directory as is; otherwise a hub id, fetched (or found in the local HF cache) with only the
    files we read: safetensors, or pytorch_model*.bin for old repos that have no safetensors."""
    if os.path.isdir(name_or_path):
        return name_or_path
    if os.path.exists(name_or_path) or name_or_path.startswith(('.', '/', '~')):
        raise ValueError(f"'{name_or_path}' is not a directory holding config.json and weights")
    try:
        from huggingface_hub import snapshot_download
        directory = snapshot_download(name_or_path, allow_patterns=['config.json', '*.safetensors',
                                                                    '*.safetensors.index.json'])
        if not any(f.endswith('.safetensors') for f in os.listdir(directory)):
            directory = snapshot_download(name_or_path, allow_patterns=['config.json', 'pytorch_model*.bin',
                                                                        'pytorch_model.bin.index.json'])
    except Exception as e:
        raise ValueError(f"could not download '{name_or_path}' from the Hugging Face hub (offline?); pass a local "
                         f"directory with config.json and *.safetensors (e.g. saved with save_pretrained)") from e
    return directory


def _read_hf_config(directory):
    path = os.path.join(directory, 'config.json')
    if not os.path.isfile(path):
        raise ValueError(f"no config.json in {directory}")
    with open(path) as f:
        return json.load(f)


def _read_hf_weights(directory):
    """Every tensor of an HF directory, as float32 whatever the stored dtype (bf16 on the hub for Qwen3)."""
    name = next((n for n in HF_WEIGHTS if os.path.isfile(os.path.join(directory, n))), None)
    if name is None:
        raise ValueError(f"no weights in {directory}: expected one of {', '.join(HF_WEIGHTS)}")
    if name.endswith('.index.json'):  # sharded: the index maps each tensor to its shard
        with open(os.path.join(directory, name)) as f:
            shards = sorted(set(json.load(f)['weight_map'].values()))
    else:
        shards = [name]
    state_dict = {}
    for shard in shards:
        path = os.path.join(directory, shard)
        try:
            if shard.endswith('.safetensors'):
                from safetensors.torch import load_file
                part = load_file(path)
            else:
                part = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            raise ValueError(f"could not read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        state_dict.update({k: v.float() for k, v in part.items()})
    return state_dict


def from_pretrained(name_or_path, **overrides):
    """GPT or Qwen3 from a hub id or local HF directory, chosen by config.json's model_type."""
    directory = _hf_directory(name_or_path)
    model_type = _read_hf_config(directory).get('model_type')
    classes = {cls.model_type: cls for cls in (GPT, Qwen3)}
    if model_type not in classes:
        raise ValueError(f"unsupported model_type '{model_type}' in {directory}; supported: {', '.join(classes)}")
    return classes[model_type].from_pretrained(directory, **overrides)


def load_checkpoint(path, device='cpu'):
    """(model, ckpt) from a train.py out_dir (its ckpt.pt) or a .pt file; the model is float32, in eval mode."""
    file = path if os.path.isfile(path) or str(path).endswith('.pt') else os.path.join(path, 'ckpt.pt')
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no checkpoint at {file}")
    try:
        try:
            ckpt = torch.load(file, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError:  # e.g. numpy RNG state, outside weights_only's allowlist: our own file
            ckpt = torch.load(file, map_location='cpu', weights_only=False)
        cls = {'gpt': GPT, 'qwen3': Qwen3}[ckpt['arch']]
        config = cls.config_class(**ckpt['model_args'])
        state_dict = ckpt['model']
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ''
        raise ValueError(f"checkpoint {file} is corrupt or not a train.py checkpoint: "
                         f"{type(e).__name__} {reason}".rstrip()) from e
    with torch.device(device):
        model = cls(config)
    load_exact(model, state_dict, file)
    return model.eval(), ckpt


def save_checkpoint(ckpt, path):
    """torch.save to a temporary file in the same folder, then os.replace: a crash while writing leaves the
    previous checkpoint at `path` intact (os.replace is atomic on POSIX and Windows)."""
    tmp = f"{path}.tmp"
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
