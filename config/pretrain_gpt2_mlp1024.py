# Figure 3, GPT-2-like model with MLP width 1024, pre-trained from scratch (settings: config/pretrain_gpt2_mlp.py).
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_gpt2_mlp1024.py
from config.pretrain_gpt2_mlp import *
out_dir = 'out/pretrain_gpt2_mlp1024'
mlp_hidden = 1024
