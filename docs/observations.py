"""
The figures of a family measurement and of a paired one, from tiny random models built with transformers
(offline, CPU, about a minute): docs/observations/trend.png, last_n.png and pairs.png, described in
docs/observations.md. They show what each figure draws, not the paper's result: the models are untrained.

    python docs/observations.py                  # rewrites docs/observations/*.png
    python docs/observations.py --workdir=tmp_obs  # and keeps the models and the measure.py outputs there

The family is four GPT-2-shaped models (6 layers) of widths 32 to 256, measured on pydocs (the offline byte
corpus of config/demo.py); the pairs are the three smallest of them as "bases" against three "distilled" models,
which here are only the same shapes with other random weights.
"""

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from configurator import config_keys, configure  # noqa: E402  (needs ROOT on the path)

# -----------------------------------------------------------------------------
workdir = ''        # where the models and measure.py's outputs go; default: a new temporary directory
num_samples = 16    # windows per model
seq_len = 128       # tokens per window
# -----------------------------------------------------------------------------
CONFIG_KEYS = config_keys(globals())


def measure(*args):
    cmd = [sys.executable, os.path.join(ROOT, 'measure.py'), '--dataset=pydocs', f'--num_samples={num_samples}',
           f'--seq_len={seq_len}', '--device=cpu', *args]
    print('$', ' '.join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)


def main(workdir):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    family, pairs = [], []
    for seed in (0, 1):  # seed 0: the family, and the bases of the pairs; seed 1: their "distilled" models
        for width in (32, 64, 128, 256):
            torch.manual_seed(seed)
            path = os.path.join(workdir, f"{'gpt2' if seed == 0 else 'other'}-w{width}")
            GPT2LMHeadModel(GPT2Config(vocab_size=257, n_positions=seq_len, n_embd=width, n_layer=6,
                                       n_head=4)).save_pretrained(path)
            (family if seed == 0 else pairs).append(path)
    pairs = family[:3] + pairs[:3]
    measure(f"--init_from={','.join(family)}", f"--out_dir={os.path.join(workdir, 'family')}")
    measure(f"--init_from={','.join(pairs)}", '--pairs=True', f"--out_dir={os.path.join(workdir, 'pairs')}")
    docs = os.path.join(ROOT, 'docs', 'observations')
    os.makedirs(docs, exist_ok=True)
    for folder, name in (('family', 'trend.png'), ('family', 'last_n.png'), ('pairs', 'pairs.png')):
        shutil.copy(os.path.join(workdir, folder, name), os.path.join(docs, name))
        print('wrote', os.path.join(docs, name))


if __name__ == '__main__':
    configure(globals(), keys=CONFIG_KEYS)
    main(workdir or tempfile.mkdtemp(prefix='observations_'))
