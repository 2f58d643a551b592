# Table 2, GPT2-m (gpt2-medium) mid-trained with L_train + orthogonalization.
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2m_ortho.py
# Hardware: about 3 A100 GPU-hours. Everything else: config/midtrain_gpt2m.py
from config.midtrain_gpt2m import *
out_dir = 'out/midtrain_gpt2m_ortho'
reg = 'orthogonalization'
reg_coeff = 0.1
reg_max_tokens = 256
