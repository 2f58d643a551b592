# The offline main job: a small GPT trained from scratch with the dispersion loss on the embedded pydocs corpus
# (Python's own documentation, byte tokens; prepared on first use, no download anywhere).
#   python train.py config/demo.py          # 2 CPU cores: see the README's quick start for the time
# Leaves in out-demo/: ckpt.pt, metrics.jsonl, training.png, condensation.json, heatmap.png, trend.png; then try
#   python sample.py --ckpt=out-demo --start="The "
#   python measure.py --ckpt=out-demo       # its own val data, windows that fit its 128-token context
# For the same run without the regularizer, add --reg=none --out_dir=out-demo-base and compare the two with
#   python measure.py --compare=out-demo-base,out-demo --out_dir=out-compare
out_dir = 'out-demo'
dataset = 'pydocs'
init_from = 'scratch'
arch = 'gpt'
n_layer = 4
n_head = 4
n_embd = 128
block_size = 128
batch_size = 16
max_iters = 500
warmup_iters = 50
learning_rate = 2e-3
min_lr = 2e-4
eval_interval = 100
eval_iters = 10
log_interval = 25
condensation_samples = 50
device = 'cpu'
compile = False
reg = 'dispersion'
reg_coeff = 0.1      # lambda_disp, the paper's best (Table 4)
reg_tau = 1.0
reg_loc = 'all'      # every block's output
