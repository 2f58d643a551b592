"""
The two model families of the paper, GPT-2 and Qwen3, as plain single-device PyTorch modules.

    from model import build_model, GPT, GPTConfig
    model = build_model('gpt', vocab_size=50257, block_size=256, n_layer=6, n_head=6, n_embd=384)
    logits, loss, hidden = model(idx, targets, return_hidden=True)   # hidden: n_layer + 1 tensors (B, T, C)
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), 'cuda')
    mfu = model.estimate_mfu(tokens_per_s, seq_len=256, device_name=torch.cuda.get_device_name())

Order of the file: GPT-2 blocks, Qwen3 blocks, what both models share (the loop over blocks, the loss, the
optimizer groups, the FLOPs), GPT, Qwen3, build_model. Module names are Hugging Face's, so our state-dict keys
are theirs (for GPT-2 after transposing its four Conv1D weights). This file reads no files and imports none of
ours: weights are read and written by checkpoint.py (our ckpt.pt) and hf_io.py (Hugging Face folders):

    from hf_io import from_pretrained, to_hf
    model = from_pretrained('gpt2')            # or 'Qwen/Qwen3-0.6B', or a local directory saved by save_pretrained
    hf_model = to_hf(model)                    # transformers GPT2LMHeadModel / Qwen3ForCausalLM, same weights

The model knows nothing about training: forward computes the next-token loss (nanoGPT's contract); every
auxiliary loss lives in losses.py. Tests: python -m pytest -q tests/test_model.py
"""

import math
import re
from dataclasses import dataclass

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
    mlp_hidden: int | None = None  # MLP width; None = 4 * n_embd. The knob of the paper's MLP-width study (Figure 3)
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
        # the tanh approximation is GPT-2's (HF 'gelu_new'); nanoGPT's exact erf GELU would not match its weights.
        # On CPU it costs 0.2-0.45% of a training step over erf: the only difference from nanoGPT's (docs/bench.md)
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
# what both share: the loop over blocks, lm_head, the loss, the optimizer groups, the FLOPs

# Dense bf16 tensor-core peak FLOP/s: half the figure NVIDIA's datasheets print "with sparsity" (2:4 sparse
# weights, which training does not use): H100/H200 SXM 1,979 TFLOPS, H100 PCIe 1,513, H100/H200 NVL 1,671,
# A100 (SXM and PCIe) 624, L4 242, A10 250.
# Matched as whole words of torch.cuda.get_device_name(), first match wins ('NVIDIA A10G' is not an A10).
PEAK_FLOPS = {'H100 PCIe': 756e12, 'H100 NVL': 835e12, 'H100': 989e12, 'H200 NVL': 835e12, 'H200': 989e12,
              'A100': 312e12, 'L4': 121e12, 'A10': 125e12}


class LanguageModel(nn.Module):
    """Base of GPT and Qwen3. A subclass provides `config`, `arch` (the name ckpt.pt stores), `config_class`,
    `embed(idx) -> (x, extra block args)`, `blocks`, `final_norm`, `lm_head`, `attn_width` and `max_seq_len`."""

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

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type, own_group=None):
        """AdamW with weight decay on every matrix and embedding (dim >= 2, as HF's Trainer), none on biases and
        norm weights. own_group: one parameter (active forgetting's token embedding) put in a group of its own,
        with weight decay, marked 'own_group': True, so train.py can give it its own lr and reset its state.
        A tied weight is one parameter, so it sits in one group once. fused=True on CUDA (one kernel per step)."""
        if own_group is not None and not any(p is own_group for p in self.parameters()):
            raise ValueError("own_group must be a parameter of this model")
        params = [p for p in self.parameters() if p.requires_grad and p is not own_group]
        groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
                  {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
        if own_group is not None:
            groups.append({'params': [own_group], 'weight_decay': weight_decay, 'own_group': True})
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == 'cuda')

    def estimate_mfu(self, tokens_per_s, seq_len, device_name):
        """Model FLOPs utilization: flops_per_token(seq_len) * tokens_per_s (of this one device) / its bf16
        peak, or None when device_name (torch.cuda.get_device_name(), or 'cpu') is not in PEAK_FLOPS. Only the
        model's FLOPs count: a regularizer's work shows as a lower MFU, not as useful work."""
        peak = next((flops for name, flops in PEAK_FLOPS.items() if re.search(rf'\b{name}\b', device_name)), None)
        return None if peak is None else self.flops_per_token(seq_len) * tokens_per_s / peak

    # nanoGPT's spellings: weights are read and written in hf_io.py, which this file cannot reach (it imports none
    # of ours), so each names its new home
    @classmethod
    def from_pretrained(cls, name_or_path, **overrides):
        """An AttributeError naming hf_io.from_pretrained(name_or_path, model_class=cls)."""
        raise AttributeError(f"{cls.__name__}.from_pretrained moved to hf_io.py: from hf_io import from_pretrained; "
                             f"from_pretrained({name_or_path!r}, model_class={cls.__name__})")

    def to_hf(self):
        """An AttributeError naming hf_io.to_hf(model)."""
        raise AttributeError("model.to_hf() moved to hf_io.py: from hf_io import to_hf; to_hf(model)")

# -----------------------------------------------------------------------------


class GPT(LanguageModel):
    arch = 'gpt'  # what ckpt.pt stores as 'arch', and run.json records
    config_class = GPTConfig

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


class Qwen3(LanguageModel):
    arch = 'qwen3'  # what ckpt.pt stores as 'arch', and run.json records
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

# -----------------------------------------------------------------------------
# a scratch model from train.py's (and bench.py's) shape keys


def build_model(arch, vocab_size, block_size, n_layer, n_head, n_embd, mlp_hidden=None, n_kv_head=None,
                head_dim=None, rope_theta=1e6, bias=True, dropout=0.0):
    """A freshly initialized GPT (arch='gpt') or Qwen3 (arch='qwen3'), exactly what train.py and bench.py train.
    mlp_hidden: MLP width (None: see below). gpt only: bias. qwen3 only: n_kv_head (None = n_head, no grouped
    keys/values), head_dim (None = n_embd // n_head), rope_theta; block_size is its context length, and its
    embedding and lm_head are tied, as in Qwen3-0.6B."""
    if arch == 'gpt':  # mlp_hidden=None is GPTConfig's 4 * n_embd, GPT-2's
        return GPT(GPTConfig(block_size=block_size, vocab_size=vocab_size, n_layer=n_layer, n_head=n_head,
                             n_embd=n_embd, dropout=dropout, bias=bias, mlp_hidden=mlp_hidden))
    if arch == 'qwen3':
        # SwiGLU width 3 * n_embd by default: Qwen3-0.6B's intermediate_size 3072 = 3 x its hidden_size 1024
        intermediate_size = mlp_hidden or 3 * n_embd
        return Qwen3(Qwen3Config(vocab_size=vocab_size, hidden_size=n_embd, intermediate_size=intermediate_size,
                                 num_hidden_layers=n_layer, num_attention_heads=n_head,
                                 num_key_value_heads=n_kv_head or n_head, head_dim=head_dim or n_embd // n_head,
                                 max_position_embeddings=block_size, rope_theta=rope_theta,
                                 tie_word_embeddings=True, dropout=dropout))
    raise ValueError(f"unknown arch '{arch}' (choose from: gpt, qwen3)")

# -----------------------------------------------------------------------------
# names this file had before: it reads no files and imports none of ours, so each is an error naming its home

MOVED = {'from_pretrained': 'hf_io', 'to_hf': 'hf_io', 'load_checkpoint': 'checkpoint', 'save_checkpoint': 'checkpoint'}


def __getattr__(name):
    # ImportError, not AttributeError: `from model import load_checkpoint` would turn an AttributeError into
    # Python's "cannot import name", losing the new home
    if name in MOVED:
        raise ImportError(f"model.{name} moved to {MOVED[name]}.py: from {MOVED[name]} import {name}")
    raise AttributeError(f"module 'model' has no attribute '{name}'")
