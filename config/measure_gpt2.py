# Figures 2 and S1, the GPT-2 family: the larger the model, the less its embeddings condense. The official ids
# and recipe (github.com/KrishnaswamyLab/LM-Dispersion, README and key_observations/compute_embedding_cossim.py):
# 100 wikitext-103 texts (seeds 0..99, >= 1024 words each), the first 512 tokens of each, float32 weights.
#   python measure.py config/measure_gpt2.py     # out-measure/gpt2: trend.png, last_n.png, heatmap_<model>.png
# Hardware: one GPU (gpt2-xl is 6 GB in float32), or a CPU in about an hour. Rerun to resume after a stop.
init_from = ['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl']
hf_dataset = 'wikitext'
num_samples = 100
seq_len = 512
dtype = 'float32'
out_dir = 'out-measure/gpt2'
