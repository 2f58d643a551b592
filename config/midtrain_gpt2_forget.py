# Table 2, GPT2 mid-trained with L_train + active forgetting (token embedding re-drawn every 1000 steps, its own lr cycle).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_forget.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_forget'
active_forgetting_every = 1000
af_emb_lr = 5e-5             # the embedding's own peak lr (official --af-emb-peak-lr)
af_emb_warmup_frac = 0.08    # official --af-emb-warmup-ratio
