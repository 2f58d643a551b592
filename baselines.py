"""
The counter-condensation baselines the paper compares the dispersion loss with, as train.py sets them up: NEFTune's
noise on the token embeddings, active forgetting's re-drawn embedding and its own lr schedule, and the frozen
teacher of knowledge distillation (its KL is losses.distillation). Only train.py imports this file; it is apart so
that the training loop reads top to bottom. Each is off unless its config key asks for it:

    add_neftune(model, alpha)                                             # noisy_embedding_alpha > 0
    lr = embedding_lr(step, max_iters, every, peak_lr, warmup_frac)       # active_forgetting_every > 0
    forget_embedding(embedding, optimizer, seed, step)                    # every `every` steps
    teacher_model = load_teacher(teacher, vocab_size, tokenizer)          # teacher = hub id, HF dir or out_dir

Tests: python -m pytest -q tests/test_train.py -k "neftune or forgetting or distillation"
"""
import math
import os

import torch

from hf_io import from_pretrained
from parallel import copy_full_, load_checkpoint


def add_neftune(model, alpha):
    """NEFTune (Jain et al. 2023): uniform noise U(-a, a), a = alpha / sqrt(T * d), on the token embeddings, in
    training only. A forward hook keeps model.py free of training concerns; for GPT-2 it acts before the position
    embedding is added, as the official baseline (which passes noisy token embeddings as inputs_embeds)."""
    def neftune_hook(module, inputs, output):
        if not module.training:
            return output
        magnitude = alpha / math.sqrt(output.size(1) * output.size(2))  # alpha / sqrt(T*d)
        return output + torch.empty_like(output).uniform_(-magnitude, magnitude)
    model.get_input_embeddings().register_forward_hook(neftune_hook)


# Active forgetting (Chen et al. 2023): every K steps the token embedding is re-drawn and its optimizer state
# cleared; in between it follows its own cyclic learning rate, so it has an optimizer group of its own.

def embedding_lr(it, max_iters, every, peak_lr, warmup_frac):
    """The embedding's lr for the update that has taken `it` before it: one linear warmup + linear decay cycle every
    K = `every` steps, a schedule over T = max_iters evaluated at the compressed index ((it + 1) * floor(T / K)) mod
    T, with int(warmup_frac * T) warmup steps: the official script's ActiveForgettingLRScheduler, after fairseq's
    lr_step_update in Chen et al. With K > T the index stays 0 and the embedding's lr is 0 throughout, as in the
    official code."""
    e = ((it + 1) * (max_iters // every)) % max_iters
    warm = int(warmup_frac * max_iters)
    return peak_lr * (e / max(1, warm) if e < warm else max(0.0, (max_iters - e) / max(1, max_iters - warm)))


def forget_embedding(embedding, optimizer, seed, at_step):
    """Re-draw the token embedding N(0, 0.02) (the head tied to it goes with it) and clear its Adam state.
    Every rank draws the same tensor from a generator seeded by (seed, step): no broadcast needed. The official
    re-implementation also zeroes the pad row, which for GPT-2 is end-of-text; our packed data has no padding,
    so every row is re-drawn."""
    g = torch.Generator(device='cpu').manual_seed(seed * 1_000_003 + at_step)
    copy_full_(embedding, torch.randn(embedding.shape, generator=g) * 0.02)  # under FSDP, each keeps its shard
    state = optimizer.state.get(embedding, {})
    for key in ('exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'):
        if key in state:
            state[key].zero_()
    if 'step' in state:
        state['step'].zero_()  # bias correction restarts, as the embedding is new


# Knowledge distillation (Figure 5's baseline): a frozen teacher's logits, KL in train.py's train_loss.

def load_teacher(teacher, vocab_size, tokenizer, trust_checkpoint=False):
    """The frozen teacher of a student with vocab_size ids from the data's `tokenizer`: a train.py run (its out_dir
    or a .pt file) or a hub id / HF dir -> the model, in eval mode, without gradients. Raises FileNotFoundError or
    ValueError as the loaders do, and ValueError when it cannot teach this student (teacher_mismatch)."""
    ours = teacher.endswith('.pt') or os.path.isfile(os.path.join(teacher, 'ckpt.pt'))  # a train.py run
    model, ckpt = load_checkpoint(teacher, trust_checkpoint=trust_checkpoint) if ours else (from_pretrained(teacher),
                                                                                             None)
    problem = teacher_mismatch(model, ckpt, vocab_size, tokenizer)
    if problem:
        raise ValueError(problem)
    return model.eval().requires_grad_(False)


def teacher_mismatch(teacher_model, teacher_ckpt, vocab_size, tokenizer):
    """Why the teacher cannot teach this student, or None (train.py says "teacher: <why>"). KL over the vocabulary
    needs the same token ids: the same size, and the same tokenizer when we know it (the teacher's checkpoint
    records its data's)."""
    if teacher_model.config.vocab_size != vocab_size:
        return (f"its vocabulary ({teacher_model.config.vocab_size}) differs from the student's ({vocab_size}): "
                f"distillation needs the same tokenizer")
    teacher_tokenizer = teacher_ckpt.get('data_meta', {}).get('tokenizer') if teacher_ckpt else None
    if teacher_ckpt is not None and teacher_tokenizer != tokenizer:
        return f"its tokenizer '{teacher_tokenizer}' differs from the data's '{tokenizer}'"
    return None
