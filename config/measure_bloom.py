# Figure S1, the BLOOM family, recipe as config/measure_gpt2.py (the official one). bloom-7b1 is 28 GB in
# float32: one GPU of 40 GB or more (else add --device_map=auto).
#   python measure.py config/measure_bloom.py       # out-measure/bloom
init_from = ['bigscience/bloom-560m', 'bigscience/bloom-1b1', 'bigscience/bloom-1b7', 'bigscience/bloom-3b',
             'bigscience/bloom-7b1']
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 512
dtype = 'float32'
out_dir = 'out-measure/bloom'
