# Figure S2d, the GPT-2 family on other texts: squad's contexts instead of wikitext (the official --dataset
# squad); everything else as config/measure_gpt2.py.
#   python measure.py config/measure_gpt2_squad.py
from config.measure_gpt2 import *
hf_dataset = 'squad'
out_dir = 'out-measure/gpt2_squad'
