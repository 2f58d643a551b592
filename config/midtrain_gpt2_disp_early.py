# Table 3, GPT2 mid-training with dispersion on the early half of the blocks only (1..6 of 12) (config/midtrain_gpt2_disp.py is every block).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp_early.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_disp_early'
reg = 'dispersion'
reg_coeff = 0.1
reg_tau = 1.0
reg_loc = 'early_half'
reg_max_tokens = 256
