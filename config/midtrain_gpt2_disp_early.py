# Table 3, dispersion on the early half of the blocks only (GPT2 mid-training setting).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp_early.py
# Hardware: one A100/H100 GPU-hour. Everything else as config/midtrain_gpt2_disp.py.
from config.midtrain_gpt2_disp import *
out_dir = 'out/midtrain_gpt2_disp_early'
reg_loc = 'early_half'
