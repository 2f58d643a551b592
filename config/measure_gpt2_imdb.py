# Figure S2c, the GPT-2 family on other texts: imdb reviews instead of wikitext (the official --dataset imdb);
# everything else as config/measure_gpt2.py.
#   python measure.py config/measure_gpt2_imdb.py
from config.measure_gpt2 import *
hf_dataset = 'imdb'
out_dir = 'out-measure/gpt2_imdb'
