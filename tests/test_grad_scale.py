"""grad_accum_reduction='sum' reproduces the gradient scale of the official runs: train.py's logged grad norms (before
clipping) equal those of transformers.Trainer running the official loss on the same tiny model and the same windows,
under gradient accumulation 4; the same norms on 2 processes as on one; train_loss stays the mean.

python -m pytest -q tests/test_grad_scale.py
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import run_in_process
from test_train import byte_token_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED, BLOCK, BATCH, ACCUM, STEPS, LR = 1, 32, 2, 4, 4, 1e-3
# one recipe for both sides: AdamW betas (0.9, 0.95), eps 1e-8, wd 0.1 on matrices and embeddings only, cosine to 0
# after 1 warmup step (so step 1 has lr 0, as transformers' schedule), clip at 1.0, float32, no dropout
ARGS = [f"--block_size={BLOCK}", f"--batch_size={BATCH}", f"--gradient_accumulation_steps={ACCUM}",
        f"--max_iters={STEPS}", f"--learning_rate={LR}", "--min_lr=0", "--warmup_iters=1", "--weight_decay=0.1",
        "--beta1=0.9", "--beta2=0.95", "--grad_clip=1.0", "--dropout=0.0", "--dtype=float32", "--compile=False",
        "--device=cpu", f"--seed={SEED}", "--log_interval=1", f"--eval_interval={STEPS}", "--eval_iters=1",
        "--condensation_samples=2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Byte-vocabulary tokens from a fixed linear congruential generator: the same on every machine."""
    state, ids = 12345, []
    for _ in range(20_000):
        state = (1664525 * state + 1013904223) % 2 ** 32
        ids.append((state >> 16) % 257)
    return byte_token_dir(tmp_path_factory.mktemp("lcg"), ids, 18_000)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny random GPT-2 saved as a Hugging Face folder, without dropout."""
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=257, n_positions=64, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0)
    d = tmp_path_factory.mktemp("hf")
    GPT2LMHeadModel(config).save_pretrained(d)
    return str(d)


def train(out_dir, data_dir, hf_dir, *args, nproc=1):
    """train.py's logged steps: one process runs in this one (run_in_process), more under torchrun."""
    args = [f"--dataset={data_dir}", f"--out_dir={out_dir}", f"--init_from={hf_dir}", *ARGS, *args]
    if nproc > 1:
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc_per_node={nproc}", "train.py", *args], cwd=ROOT, capture_output=True,
                           text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    else:
        import figures
        with pytest.MonkeyPatch.context() as mp:  # training.png: not what this checks, and most of a tiny run's time
            mp.setattr(figures, "save_figure", lambda fig, path: fig)
            r = run_in_process("train.py", *args)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [m for m in records if "grad_norm" in m]


def official_trainer_run(data_dir, hf_dir, out_dir):
    """transformers.Trainer with the official compute_loss (lm_dispersion/midtrain_gpt2_huggingface/midtrain_gpt2.py
    of github.com/KrishnaswamyLab/LM-Dispersion, without the regularizer): the next-token cross entropy averaged
    over each micro-batch, num_items_in_batch ignored. The Trainer is fed the windows train.py's get_batch draws,
    in its order: window j of step s starts at default_rng([seed, 0, s]).integers(0, len - block_size - 1,
    size=global batch)[j], micro-step m takes windows m*batch_size.. of it. Each window's block_size + 1 tokens
    are both input_ids and labels: the loss shifts them, so it scores the same block_size predictions as
    train.py. Returns (per-step logs, per-micro-batch losses, what the Trainer decided about the loss scale)."""
    from torch.utils.data import SequentialSampler
    from transformers import GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    data = np.fromfile(os.path.join(data_dir, "train.bin"), dtype=np.uint16)
    windows = []
    for s in range(STEPS):
        starts = np.random.default_rng([SEED, 0, s]).integers(0, len(data) - BLOCK - 1, size=BATCH * ACCUM)
        windows += [torch.from_numpy(data[i:i + BLOCK + 1].astype(np.int64)) for i in starts]
    dataset = [{"input_ids": w, "labels": w} for w in windows]

    class OfficialLossTrainer(Trainer):
        micro_losses, items_given = [], []

        def _get_train_sampler(self, *args, **kwargs):  # in order: no shuffling
            return SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            self.items_given.append(kwargs.get("num_items_in_batch") is not None)
            labels = inputs["labels"]
            outputs = model(**inputs)
            logits = outputs.logits[..., :-1, :].contiguous()
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                                     labels[..., 1:].contiguous().view(-1), ignore_index=-100)
            self.micro_losses.append(loss.item())
            return (loss, outputs) if return_outputs else loss

    step_logs = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "grad_norm" in logs:
                step_logs.append(dict(logs))

    args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=BATCH, gradient_accumulation_steps=ACCUM,
                             learning_rate=LR, optim="adamw_torch", lr_scheduler_type="cosine", max_steps=STEPS,
                             warmup_steps=1, weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8,
                             max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                             seed=SEED, disable_tqdm=True, dataloader_num_workers=0)
    model = GPT2LMHeadModel.from_pretrained(hf_dir)
    trainer = OfficialLossTrainer(model=model, args=args, train_dataset=dataset, callbacks=[Record()])
    trainer.train()
    decided = {"model_accepts_loss_kwargs": trainer.model_accepts_loss_kwargs,
               "num_items_in_batch_given": all(trainer.items_given)}
    return step_logs, trainer.micro_losses, decided


def test_sum_matches_the_official_trainer_and_does_not_depend_on_processes(tmp_path, data_dir, hf_dir):
    ours = train(tmp_path / "sum", data_dir, hf_dir, "--grad_accum_reduction=sum")
    hf_logs, micro_losses, decided = official_trainer_run(data_dir, hf_dir, str(tmp_path / "trainer"))
    # Why the official runs sum: the Trainer divides by the accumulation steps only when the loss is not already
    # normalised, which it infers from a model forward taking **kwargs and num_items_in_batch being set (the
    # labels are there): transformers 4.55-4.57 and 5.x alike; 4.46.0 multiplied back what accelerate divided.
    # The official compute_loss then ignores num_items_in_batch, so nothing divides. Should a transformers
    # release change that inference, this says so before the numbers below do.
    assert decided == {"model_accepts_loss_kwargs": True, "num_items_in_batch_given": True}
    assert len(ours) == len(hf_logs) == STEPS and len(micro_losses) == STEPS * ACCUM
    for s in range(STEPS):
        assert ours[s]["grad_norm"] == pytest.approx(hf_logs[s]["grad_norm"], rel=1e-5), (s + 1, ours, hf_logs)
        # the logged loss is the mean over the step's micro-batches, whatever the gradient's scale
        assert ours[s]["train_loss"] == pytest.approx(np.mean(micro_losses[s * ACCUM:(s + 1) * ACCUM]), rel=1e-5)
    assert ours[0]["grad_norm"] > 1.0  # the clip binds: the later steps check that both clip the same way

    # today's default: the mean, a quarter of the sum at the first step (same weights, same windows)
    mean = train(tmp_path / "mean", data_dir, hf_dir, "--grad_accum_reduction=mean", "--max_iters=1")
    assert mean[0]["grad_norm"] * ACCUM == pytest.approx(ours[0]["grad_norm"], rel=1e-5)

    # two processes, two micro-steps each: the same sum over the 4 micro-batches
    two = train(tmp_path / "sum2", data_dir, hf_dir, "--grad_accum_reduction=sum", nproc=2)
    for s in range(STEPS):
        assert two[s]["grad_norm"] == pytest.approx(ours[s]["grad_norm"], rel=1e-5), (s + 1, two, ours)
