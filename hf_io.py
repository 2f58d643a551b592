"""
Hugging Face I/O: our GPT and Qwen3 from a Hugging Face folder or hub id, the same model back as a transformers
model, and any other causal LM of the hub as transformers loads it (measure.py).

    from hf_io import from_pretrained, to_hf
    model = from_pretrained('gpt2')            # a hub id or a local Hugging Face directory -> GPT or Qwen3
    model = from_pretrained(path, model_class=GPT)   # nanoGPT's GPT.from_pretrained(path): that class or an error
    hf_model = to_hf(model)                    # -> transformers GPT2LMHeadModel / Qwen3ForCausalLM, same weights

In order: from_pretrained and to_hf, Hugging Face directories, any other causal LM, then the mapping between
Hugging Face's weights and ours, one block per model family. Our module names are Hugging Face's, so the mapping is
short: GPT-2's four Conv1D weights are stored transposed, a base-model checkpoint lacks the 'transformer.' /
'model.' prefix, and a tied lm_head may be absent. A pytorch_model.bin is data, as ckpt.pt is: read by
checkpoint.torch_load (tensors and plain values only, weights_only=True).

Tests: python -m pytest -q tests/test_model.py
"""
import json
import os
from dataclasses import replace
from typing import Callable, NamedTuple

import torch

from checkpoint import check_tensors, torch_load
from configurator import one_line
from model import GPT, Qwen3


def from_pretrained(name_or_path, model_class=None, **overrides):
    """GPT or Qwen3 from a hub id or a local HF directory, chosen by config.json's model_type; float32, eval mode.
    model_class: require that class (nanoGPT's GPT.from_pretrained(path)). overrides set config fields, e.g.
    dropout=0.1 (HF's dropout is not read) or a smaller block_size."""
    directory = _hf_directory(name_or_path)
    hf_config = _read_hf_config(directory)
    model_type = hf_config.get('model_type')
    if model_class is not None:
        expected = next((t for t, m in HF_MODELS.items() if issubclass(model_class, m.model_class)), None)
        if expected is None:
            raise ValueError(f"no Hugging Face mapping for {model_class.__name__}")
        if model_type != expected:
            raise ValueError(f"{directory} holds model_type '{model_type}', not '{expected}'")
    elif model_type not in HF_MODELS:
        raise ValueError(f"unsupported model_type '{model_type}' in {directory}; supported: {', '.join(HF_MODELS)}")
    mapping = HF_MODELS[model_type]
    model_class = model_class or mapping.model_class
    unknown = sorted(set(overrides) - set(model_class.config_class.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown {model_class.config_class.__name__} field(s) {unknown} in overrides")
    try:
        config = model_class.config_class(**mapping.config_from_hf(hf_config))
        model = model_class(replace(config, **overrides))
    except ValueError:
        raise
    except Exception as e:  # values of the wrong type or size in config.json
        raise ValueError(f"{directory}/config.json does not describe a {model_class.__name__}: {one_line(e)}") from None
    load_exact(model, mapping.state_dict_from_hf(_read_hf_weights(directory), model.config), directory)
    return model.eval()


def to_hf(model):
    """The equivalent transformers model of our GPT or Qwen3 (float32, CPU, eval), for save_pretrained and lm-eval."""
    mapping = next((m for m in HF_MODELS.values() if isinstance(model, m.model_class)), None)
    if mapping is None:
        raise ValueError(f"no Hugging Face mapping for {type(model).__name__}")
    return mapping.to_hf(model)


def load_exact(model, state_dict, source):
    """Load every tensor of `model` from state_dict, with no tensor missing, extra or of another shape."""
    check_tensors(model.state_dict(), state_dict, source)
    model.load_state_dict(state_dict, strict=True)  # copies into our float32 parameters

# -----------------------------------------------------------------------------
# Hugging Face directories: config.json + safetensors (or pytorch_model.bin), a hub id or a local folder

HF_WEIGHTS = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json']


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


def _read_json(path):
    """A JSON object from a file of a model directory; a one-line ValueError naming the file if it is not one."""
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError) as e:  # unreadable, truncated, not JSON, not UTF-8
        raise ValueError(f"could not read {path}: {one_line(e)}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_hf_config(directory):
    path = os.path.join(directory, 'config.json')
    if not os.path.isfile(path):
        raise ValueError(f"no config.json in {directory}")
    return _read_json(path)


def _read_hf_weights(directory):
    """Every tensor of an HF directory, as float32 whatever the stored dtype (bf16 on the hub for Qwen3)."""
    name = next((n for n in HF_WEIGHTS if os.path.isfile(os.path.join(directory, n))), None)
    if name is None:
        raise ValueError(f"no weights in {directory}: expected one of {', '.join(HF_WEIGHTS)}")
    if name.endswith('.index.json'):  # sharded: the index maps each tensor to its shard
        index = _read_json(os.path.join(directory, name))
        if not isinstance(index.get('weight_map'), dict):
            raise ValueError(f"{os.path.join(directory, name)} has no 'weight_map'")
        shards = sorted(set(map(str, index['weight_map'].values())))
        if any(os.path.basename(s) != s for s in shards):  # a shard is a file of this directory, nowhere else
            raise ValueError(f"{os.path.join(directory, name)} names shards outside {directory}")
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
                part = torch_load(path)  # tensors only: a pickle's code never runs
            state_dict.update({k: v.float() for k, v in part.items()})
        except Exception as e:
            raise ValueError(f"could not read {path}: {one_line(e)}") from None
    return state_dict


def _need(hf_config, key):
    if key not in hf_config:
        raise ValueError(f"config.json lacks '{key}'")
    return hf_config[key]


def _tied_head(state_dict, embed_key, source):
    # a tied checkpoint may store lm_head.weight or not (HF >= 5 does not); if it does, it must be the embedding
    if embed_key in state_dict:
        head = state_dict.setdefault('lm_head.weight', state_dict[embed_key])
        if not torch.equal(head, state_dict[embed_key]):
            raise ValueError(f"{source}: lm_head.weight differs from {embed_key} but the config ties them")
    return state_dict

# -----------------------------------------------------------------------------
# any other Hugging Face causal LM (measure.py)


def hf_model_type(name, revision=None):
    """model_type from config.json of a local dir or a hub id, without importing transformers (seconds)."""
    if os.path.isdir(name):
        path = os.path.join(name, 'config.json')
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no config.json in '{name}'")
    else:
        from huggingface_hub import hf_hub_download
        path = hf_hub_download(name, 'config.json', revision=revision)
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return config.get('model_type')


def load_causal_lm(name, revision=None, dtype=torch.float32, trust_remote_code=False, **placement):
    """Any Hugging Face causal LM through transformers' AutoModelForCausalLM, loaded straight in dtype (a 32B model
    in bf16 needs 64 GB, not 128) and placed by accelerate's big-model inference when placement holds device_map,
    max_memory, offload_folder. Its own modeling code (config.json's auto_map) runs only with trust_remote_code."""
    from transformers import AutoModelForCausalLM
    try:
        return AutoModelForCausalLM.from_pretrained(name, revision=revision, dtype=dtype,
                                                    trust_remote_code=trust_remote_code, **placement)
    except ValueError as e:  # transformers names its argument; ours is a flag
        if 'trust_remote_code' in str(e) and not trust_remote_code:
            raise ValueError("it runs its own modeling code (config.json's auto_map): read that code, then "
                             "pass --trust_remote_code=True") from e
        raise


# -----------------------------------------------------------------------------
# GPT-2 (model_type 'gpt2') <-> model.GPT

GPT2_CONV1D = ('attn.c_attn.weight', 'attn.c_proj.weight', 'mlp.c_fc.weight', 'mlp.c_proj.weight')  # HF: [in, out]


def gpt2_config_from_hf(hf):
    """config.json (a dict) -> GPTConfig's fields."""
    for key, supported in [('activation_function', 'gelu_new'), ('scale_attn_weights', True),
                           ('scale_attn_by_inverse_layer_idx', False), ('add_cross_attention', False),
                           ('tie_word_embeddings', True)]:
        if hf.get(key, supported) != supported:
            raise ValueError(f"GPT-2 config.json has {key}={hf[key]!r}; only {supported!r} is supported")
    return dict(block_size=hf.get('n_positions', 1024), vocab_size=_need(hf, 'vocab_size'),
                n_layer=_need(hf, 'n_layer'), n_head=_need(hf, 'n_head'), n_embd=_need(hf, 'n_embd'),
                mlp_hidden=hf.get('n_inner'), layer_norm_eps=hf.get('layer_norm_epsilon', 1e-5))


def gpt2_state_dict_from_hf(hf_state_dict, config):
    state_dict = {}
    for key, tensor in hf_state_dict.items():
        if key.endswith(('.attn.bias', '.attn.masked_bias')):
            continue  # causal-mask buffers of old checkpoints, not weights
        if key != 'lm_head.weight' and not key.startswith('transformer.'):
            key = 'transformer.' + key  # base-model checkpoints (GPT2Model) lack the prefix
        state_dict[key] = tensor.t() if key.endswith(GPT2_CONV1D) else tensor
    wpe = state_dict.get('transformer.wpe.weight')
    if wpe is not None and wpe.size(0) > config.block_size:  # a smaller block_size was asked for
        state_dict['transformer.wpe.weight'] = wpe[:config.block_size]
    return _tied_head(state_dict, 'transformer.wte.weight', 'GPT-2 weights')


def gpt2_to_hf(model):
    """The equivalent transformers GPT2LMHeadModel (float32, CPU, eval). bias=False exports zero biases."""
    from transformers import GPT2Config, GPT2LMHeadModel
    c = model.config
    eot = 50256 if c.vocab_size > 50256 else None  # GPT-2's <|endoftext|>, when the vocabulary has it
    hf_config = GPT2Config(
        vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer, n_head=c.n_head,
        n_inner=c.mlp_hidden, activation_function='gelu_new', resid_pdrop=c.dropout, embd_pdrop=c.dropout,
        attn_pdrop=c.dropout, layer_norm_epsilon=c.layer_norm_eps, tie_word_embeddings=True,
        bos_token_id=eot, eos_token_id=eot, attn_implementation='sdpa')
    hf_model = GPT2LMHeadModel(hf_config)
    state_dict = {k: v.t() if k.endswith(GPT2_CONV1D) else v for k, v in model.state_dict().items()}
    for k, v in hf_model.state_dict().items():
        state_dict.setdefault(k, torch.zeros_like(v))  # only the biases, when bias=False
    hf_model.load_state_dict({k: v.detach().float().cpu() for k, v in state_dict.items()}, strict=True)
    return hf_model.eval()

# -----------------------------------------------------------------------------
# Qwen3 (model_type 'qwen3') <-> model.Qwen3


def qwen3_config_from_hf(hf):
    """config.json (a dict) -> Qwen3Config's fields."""
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


def qwen3_state_dict_from_hf(hf_state_dict, config):
    state_dict = {}
    for key, tensor in hf_state_dict.items():
        if key.endswith('rotary_emb.inv_freq'):
            continue  # a buffer recomputed from rope_theta, stored by old checkpoints
        if key != 'lm_head.weight' and not key.startswith('model.'):
            key = 'model.' + key  # base-model checkpoints (Qwen3Model) lack the prefix
        state_dict[key] = tensor
    if config.tie_word_embeddings:
        state_dict = _tied_head(state_dict, 'model.embed_tokens.weight', 'Qwen3 weights')
    return state_dict


def qwen3_to_hf(model):
    """The equivalent transformers Qwen3ForCausalLM (float32, CPU, eval)."""
    from transformers import Qwen3Config as HFQwen3Config, Qwen3ForCausalLM
    c = model.config
    hf_config = HFQwen3Config(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
        max_position_embeddings=c.max_position_embeddings,
        rope_parameters={'rope_type': 'default', 'rope_theta': c.rope_theta}, rms_norm_eps=c.rms_norm_eps,
        tie_word_embeddings=c.tie_word_embeddings, attention_bias=c.attention_bias, attention_dropout=c.dropout,
        initializer_range=c.initializer_range, use_sliding_window=False, attn_implementation='sdpa')
    hf_model = Qwen3ForCausalLM(hf_config)
    hf_model.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()}, strict=True)
    return hf_model.eval()

# -----------------------------------------------------------------------------


class HFMapping(NamedTuple):
    model_class: type  # ours
    config_from_hf: Callable  # config.json (a dict) -> our config's fields
    state_dict_from_hf: Callable  # (HF's tensors, our config) -> our state dict
    to_hf: Callable  # our model -> the transformers model with the same weights


# config.json's model_type -> its mapping. A new family is one block above and one line here.
HF_MODELS = {'gpt2': HFMapping(GPT, gpt2_config_from_hf, gpt2_state_dict_from_hf, gpt2_to_hf),
             'qwen3': HFMapping(Qwen3, qwen3_config_from_hf, qwen3_state_dict_from_hf, qwen3_to_hf)}
