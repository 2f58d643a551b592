# Table 4, dispersion with reg_coeff = 0.5 (GPT2 mid-training setting; the other values of the table are
# config/midtrain_gpt2_disp.py (lambda 0.1, tau 1) and the files beside this one).
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2_disp_lambda0p5.py
from config.midtrain_gpt2_disp import *
out_dir = 'out/midtrain_gpt2_disp_lambda0p5'
reg_coeff = 0.5
