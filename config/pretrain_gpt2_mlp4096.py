# Figure 3, GPT-2-like model with MLP width 4096, pre-trained from scratch (settings: config/pretrain_gpt2_mlp.py).
#   torchrun --standalone --nproc_per_node=8 train.py config/pretrain_gpt2_mlp4096.py
from config.pretrain_gpt2_mlp import *
out_dir = 'out/pretrain_gpt2_mlp4096'
mlp_hidden = 4096
