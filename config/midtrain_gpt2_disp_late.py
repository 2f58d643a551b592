# Table 3, GPT2 mid-training with dispersion on the late half of the blocks only (7..12 of 12) (config/midtrain_gpt2_disp.py is every block).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp_late.py
# Hardware: one A100/H100 GPU-hour. Everything else: config/midtrain_gpt2.py
from config.midtrain_gpt2 import *
out_dir = 'out/midtrain_gpt2_disp_late'
reg = 'dispersion'
reg_coeff = 0.1
reg_tau = 1.0
reg_loc = 'late_half'
reg_max_tokens = 256
