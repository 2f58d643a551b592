# Figure S2b, the GPT-2 family on other texts: pubmed_qa's long answers instead of wikitext (the official
# --dataset pubmed); everything else as config/measure_gpt2.py.
#   python measure.py config/measure_gpt2_pubmed_qa.py
from config.measure_gpt2 import *
hf_dataset = 'pubmed_qa'
out_dir = 'out-measure/gpt2_pubmed_qa'
