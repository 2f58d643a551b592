# Table 2, GPT2-m (gpt2-medium) mid-trained with L_train only; shared settings of the GPT2-m configs.
#   torchrun --standalone --nproc_per_node=8 train.py config/midtrain_gpt2m.py
# Hardware: about 3 A100 GPU-hours (the paper's Table 2), same recipe as config/midtrain_gpt2.py.
from config.midtrain_gpt2 import *
init_from = 'gpt2-medium'
out_dir = 'out/midtrain_gpt2m'
