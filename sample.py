"""
Sample text from a checkpoint of train.py.

    python sample.py --ckpt=out-demo --start="The " --num_samples=3 --max_new_tokens=200 --temperature=0.8
    python sample.py --ckpt=out-demo/ckpt_000500.pt --start=FILE:prompt.txt --top_k=0 --temperature=0

The tokenizer is the one the checkpoint's data was made with (its meta.json is stored in the checkpoint).
An empty --start begins from the end-of-text token: an unconditional sample. temperature=0 is greedy.
"""

import torch
import torch.nn.functional as F

from configurator import Device, Range, configure, die

# -----------------------------------------------------------------------------
# defaults (--key=value; the annotations say what each allows: configurator.py)
ckpt = 'out'            # a train.py out_dir (its ckpt.pt) or a .pt file
start = ''              # prompt text, or FILE:path to read it from a file; '' = start from end-of-text
num_samples: Range(min=1) = 3  # samples drawn, one after the other
max_new_tokens: Range(min=0) = 200  # tokens generated per sample
temperature: Range(min=0) = 0.8  # < 1 sharpens the distribution, > 1 flattens it; 0 = always the most likely token
top_k: Range(min=0) = 200  # keep only the k most likely tokens (0 = all)
seed = 1337             # the sampling seed (torch.manual_seed)
trust_checkpoint = False  # load a ckpt.pt with full pickle, which can run code: only a file you made yourself
device: Device() = 'auto'  # 'auto' = cuda if available, else cpu; or cpu, cuda, cuda:N, mps
# -----------------------------------------------------------------------------


@torch.no_grad()
def generate(model, idx, max_new_tokens, temperature=1.0, top_k=0, vocab_size=None):
    """Extend idx (B, T) by max_new_tokens tokens, one forward pass each (no KV cache: short and readable).
    vocab_size: the tokenizer's; logits past it (a vocabulary padded for speed) are never sampled."""
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -model.max_seq_len:]  # the context window slides once the text outgrows it
        logits, _ = model(idx_cond)
        logits = logits[:, -1, :vocab_size]  # (B, vocab) at the last position
        if temperature == 0:
            idx_next = logits.argmax(dim=-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, float('-inf'))
            idx_next = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


if __name__ == '__main__':
    configure(globals())
    from parallel import load_checkpoint, pick_device  # load_checkpoint: ckpt.pt files and sharded folders
    device = pick_device(device)[0]  # 'auto' = cuda when available, else cpu
    from data import check_token_ids, get_tokenizer

    torch.manual_seed(seed)
    try:
        model, checkpoint = load_checkpoint(ckpt, device=device, trust_checkpoint=trust_checkpoint)
        meta = checkpoint.get('data_meta')
        if not meta or not isinstance(meta.get('tokenizer'), str):
            raise ValueError(f"checkpoint {ckpt} has no data_meta: cannot tell which tokenizer it was trained with")
        tok = get_tokenizer(meta['tokenizer'])
        if start.startswith('FILE:'):
            with open(start[5:], encoding='utf-8') as f:
                start = f.read()
    except (FileNotFoundError, ValueError, OSError) as e:
        die(str(e))
    start_ids = tok.encode(start) if start else [tok.eot_token]
    if not start_ids:
        die(f"--start {start!r} encodes to no tokens")
    try:  # a checkpoint whose data_meta names a tokenizer larger than its model: found here, not as an IndexError
        check_token_ids(start_ids, model.get_input_embeddings().weight.size(0), meta['tokenizer'],
                        '--start' if start else "the end-of-text token (an empty --start)")
    except ValueError as e:
        die(str(e))
    x = torch.tensor(start_ids, dtype=torch.long, device=device)[None, :]
    step = checkpoint.get('step', '?')
    print(f"{ckpt} (step {step}, tokenizer {meta['tokenizer']}), temperature {temperature}, "
          f"top_k {top_k}, seed {seed}")
    for _ in range(num_samples):
        y = generate(model, x, max_new_tokens, temperature=temperature, top_k=top_k, vocab_size=tok.vocab_size)
        print(tok.decode(y[0].tolist()))
        print('---------------')
