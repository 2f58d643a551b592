# Table 2, GPT2-m (gpt2-medium) mid-trained with L_train + active forgetting (token embedding re-drawn every 1000 steps, its own lr cycle).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2m_forget.py
# Hardware: about 3 A100 GPU-hours. Everything else: config/midtrain_gpt2m.py
from config.midtrain_gpt2m import *
out_dir = 'out/midtrain_gpt2m_forget'
active_forgetting_every = 1000
af_emb_lr = 5e-5             # the embedding's own peak lr (official --af-emb-peak-lr)
af_emb_warmup_frac = 0.08    # official --af-emb-warmup-ratio
