# Figure 5, knowledge distillation is no remedy: GPT2 mid-trained on WikiText-103 with a KL term towards the
# frozen GPT2-xl (same tokenizer), everything else as config/midtrain_gpt2.py. The paper does not give the KD
# weight or temperature; these (1.0, T = 2) are ours. Compare with measure.py against midtrain_gpt2_disp.
#   torchrun --standalone --nproc_per_node=8 train.py config/distill_gpt2_from_gpt2xl.py
# Hardware: the teacher's forward passes make this about 3x the plain run (~3 A100 GPU-hours).
from config.midtrain_gpt2 import *
out_dir = 'out/distill_gpt2_from_gpt2xl'
teacher = 'gpt2-xl'
kd_coeff = 1.0
kd_temperature = 2.0
