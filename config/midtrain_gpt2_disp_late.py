# Table 3, dispersion on the late half of the blocks only (GPT2 mid-training setting).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp_late.py
# Hardware: one A100/H100 GPU-hour. Everything else as config/midtrain_gpt2_disp.py.
from config.midtrain_gpt2_disp import *
out_dir = 'out/midtrain_gpt2_disp_late'
reg_loc = 'late_half'
