"""train.py end to end on a tiny byte-level dataset: exact resume, 1 vs 2 processes, what each method does,
checkpoints that survive crashes and signals, mid-training from an HF directory, bad input. Most runs are the
command line run in this process (train_here); fresh processes where the process is what a test checks (torchrun,
SIGTERM, an edited copy of the sources).

python -m pytest -q tests/test_train.py
"""
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import run_in_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=4", "--dropout=0.0",
        "--compile=False", "--device=cpu", "--warmup_iters=2", "--learning_rate=3e-3", "--min_lr=3e-4",
        "--log_interval=1", "--eval_iters=2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """~150 KB of English prose that ships with Python, as byte tokens (ids 0..255, 256 = end of text)."""
    from pydoc_data.topics import topics
    docs = [topics[k] for k in sorted(topics)]
    ids = []
    for d in docs:
        ids.extend(d.encode("utf-8"))
        ids.append(256)
        if len(ids) > 150_000:
            break
    ids = np.array(ids, dtype=np.uint16)
    d = tmp_path_factory.mktemp("bytes")
    split = int(len(ids) * 0.9)
    ids[:split].tofile(d / "train.bin")
    ids[split:].tofile(d / "val.bin")
    (d / "meta.json").write_text(json.dumps({"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257,
                                             "eot_token": 256}))
    return str(d)


def train(out_dir, data_dir, *args, nproc=1, check=True):
    """train.py on the tiny model in a fresh process (under torchrun with nproc > 1) -> subprocess.CompletedProcess."""
    cmd = [sys.executable, "train.py", f"--dataset={data_dir}", f"--out_dir={out_dir}", *TINY, *args]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               *cmd[1:]]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def train_here(out_dir, data_dir, *args, check=True, env=None, draw=()):
    """train()'s command line in one process, run in this one (conftest.run_in_process: the same exit code, stdout
    and stderr) without a fresh process's seconds of imports. Figures are not rendered (their drawing is most of a
    tiny run's time) except the files named in `draw` (draw=True: all of them), for the tests that look at them."""
    import figures
    save_figure = figures.save_figure
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "save_figure",
                   lambda fig, path: save_figure(fig, path) if draw is True or os.path.basename(path) in draw else fig)
        r = run_in_process("train.py", f"--dataset={data_dir}", f"--out_dir={out_dir}", *TINY, *args, env=env)
    if check:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_losses(out_dir):
    return {m["step"]: m["train_loss"] for m in metrics(out_dir) if "train_loss" in m}


def test_loss_starts_near_uniform_and_falls_and_outputs_exist(tmp_path, data_dir):
    out = tmp_path / "run"
    train_here(out, data_dir, "--max_iters=30", "--eval_interval=30", "--reg=dispersion",
               draw=("heatmap.png", "trend.png"))  # the end-of-run figures (training.png: tests/test_tracking.py)
    losses = train_losses(out)
    assert abs(losses[1] - np.log(257)) < 0.3  # a fresh model predicts ~uniformly over 257 ids
    assert losses[30] < losses[1] - 1.0
    for name in ("ckpt.pt", "metrics.jsonl", "run.json", "condensation.json", "condensation.csv", "heatmap.png",
                 "trend.png"):
        assert (out / name).exists() and (out / name).stat().st_size > 0, name
    with open(out / "condensation.json") as f:
        measured = json.load(f)
    with open(out / "condensation.csv") as f:
        row = next(csv.DictReader(f))
    assert measured["step"] == 30 and int(row["step"]) == 30 and len(measured["mean_cossim"]) == 3
    assert float(row["mean_last_1"]) == pytest.approx(measured["mean_cossim"][-1])
    rec = [m for m in metrics(out) if "val_loss" in m][-1]
    assert len(rec["mean_cossim"]) == 3 and all(-1 <= c <= 1 for c in rec["mean_cossim"])
    assert "reg_loss" in metrics(out)[0]


def test_resume_is_exact_with_dispersion(tmp_path, data_dir):
    common = ["--reg=dispersion", "--reg_coeff=0.5", "--lr_decay_iters=16", "--eval_interval=100"]
    full, part = tmp_path / "full", tmp_path / "part"
    train_here(full, data_dir, "--max_iters=16", *common)
    train_here(part, data_dir, "--max_iters=8", *common)
    train_here(part, data_dir, "--max_iters=16", "--init_from=resume", *common)
    a, b = train_losses(full), train_losses(part)
    assert sorted(a) == sorted(b) == list(range(1, 17))
    for s in range(1, 17):
        assert abs(a[s] - b[s]) <= 1e-5, (s, a[s], b[s])


def test_two_processes_train_what_one_process_trains(tmp_path, data_dir):
    common = ["--max_iters=6", "--gradient_accumulation_steps=2", "--eval_interval=6", "--reg=dispersion"]
    one, two = tmp_path / "one", tmp_path / "two"
    train_here(one, data_dir, *common)
    train(two, data_dir, *common, nproc=2)
    a, b = train_losses(one), train_losses(two)
    assert sorted(a) == sorted(b) == list(range(1, 7))
    for s in a:
        assert abs(a[s] - b[s]) <= 1e-4, (s, a[s], b[s])
    va = [m["val_loss"] for m in metrics(one) if "val_loss" in m]
    vb = [m["val_loss"] for m in metrics(two) if "val_loss" in m]
    assert abs(va[-1] - vb[-1]) <= 1e-4


def late_cos(out_dir):
    """Mean cosine over the hidden states of the late half of the blocks (the live probe of the last eval)."""
    cos = [m for m in metrics(out_dir) if "mean_cossim" in m][-1]["mean_cossim"]
    return float(np.mean(cos[(len(cos) - 1) // 2 + 1:]))  # states mid+1..N, as select_layers("late_half")


def test_dispersion_lowers_late_layer_cosine(tmp_path, data_dir):
    common = ["--max_iters=40", "--eval_interval=40", "--n_layer=3"]
    base, disp = tmp_path / "base", tmp_path / "disp"
    train_here(base, data_dir, *common)
    train_here(disp, data_dir, *common, "--reg=dispersion", "--reg_coeff=1.0")
    assert late_cos(disp) < late_cos(base) - 0.2, (late_cos(disp), late_cos(base))


def test_neftune_noise_in_training_never_in_eval(tmp_path, data_dir):
    # lr = 0: the weights never move, so any difference between the runs is the noise itself
    common = ["--max_iters=3", "--eval_interval=3", "--learning_rate=0", "--min_lr=0"]
    clean, noisy = tmp_path / "clean", tmp_path / "noisy"
    train_here(clean, data_dir, *common)
    train_here(noisy, data_dir, *common, "--noisy_embedding_alpha=50")
    a, b = train_losses(clean), train_losses(noisy)
    assert all(abs(a[s] - b[s]) > 1e-4 for s in a)
    va = [m["val_loss"] for m in metrics(clean) if "val_loss" in m][-1]
    vb = [m["val_loss"] for m in metrics(noisy) if "val_loss" in m][-1]
    assert va == vb


def _embedding_state(path):
    ckpt = torch.load(path, weights_only=True)
    group = next(g for g in ckpt["optimizer"]["param_groups"] if g.get("own_group"))
    state = ckpt["optimizer"]["state"][group["params"][0]]
    return ckpt["model"]["transformer.wte.weight"], state


def official_embedding_lr(last_epoch, T, K, peak, warmup_ratio):
    """The official ActiveForgettingLRScheduler's embedding lr (lm_dispersion/midtrain_gpt2_huggingface/
    midtrain_gpt2_other_counter_condensation.py), transcribed: last_epoch = updates taken before this one."""
    ei = ((last_epoch + 1) * (T // K)) % T
    ei = min(ei, max(0, T - 1))
    warm = int(T * warmup_ratio)
    if ei < warm:
        return peak * ei / max(1, warm)
    return peak * max(0.0, (T - ei) / max(1, T - warm))


def test_active_forgetting_resets_embedding_and_state_exactly_at_k(tmp_path, data_dir):
    out = tmp_path / "af"
    train_here(out, data_dir, "--max_iters=6", "--eval_interval=100", "--active_forgetting_every=4",
               "--snapshot_interval=1", "--af_emb_lr=1e-3", "--af_emb_warmup_frac=0.34")
    emb_lr = {m["step"]: m["emb_lr"] for m in metrics(out) if "emb_lr" in m}
    assert sorted(emb_lr) == list(range(1, 7))
    for s, v in emb_lr.items():  # T = 6, K = 4, int(0.34 * 6) = 2 warmup steps
        assert v == pytest.approx(official_embedding_lr(s - 1, 6, 4, 1e-3, 0.34), abs=1e-15), s
    w3, s3 = _embedding_state(out / "ckpt_000003.pt")
    w4, s4 = _embedding_state(out / "ckpt_000004.pt")
    w5, s5 = _embedding_state(out / "ckpt_000005.pt")
    assert s3["exp_avg"].abs().sum() > 0 and float(s3["step"]) == 3
    assert s4["exp_avg"].abs().sum() == 0 and s4["exp_avg_sq"].abs().sum() == 0 and float(s4["step"]) == 0
    assert float(s5["step"]) == 1 and s5["exp_avg"].abs().sum() > 0
    assert abs(w4.std().item() - 0.02) < 0.002  # fresh N(0, 0.02)
    assert torch.corrcoef(torch.stack([w3.flatten(), w4.flatten()]))[0, 1].abs() < 0.05  # new, not a rescale
    assert not torch.equal(w3, w4)


def test_distillation_lowers_kl_to_teacher(tmp_path, data_dir):
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    train_here(teacher, data_dir, "--max_iters=30", "--eval_interval=100", "--n_embd=48")
    train_here(student, data_dir, "--max_iters=30", "--eval_interval=100", f"--teacher={teacher}",
               "--kd_coeff=1.0")
    kd = [m["kd_loss"] for m in metrics(student) if "kd_loss" in m]
    assert kd[-1] < 0.6 * kd[0], kd


def test_sigterm_leaves_a_checkpoint_that_resumes(tmp_path, data_dir):
    out = tmp_path / "term"
    cmd = [sys.executable, "train.py", f"--dataset={data_dir}", f"--out_dir={out}", *TINY, "--max_iters=100000",
           "--eval_interval=100000"]
    # a fresh process: the signal is what this test sends, to train.py's own handler
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None and not (
            (out / "metrics.jsonl").exists() and "train_loss" in (out / "metrics.jsonl").read_text()):
        time.sleep(0.1)  # until a step is logged: training is under way
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stderr[-2000:]
    assert "stopped by signal" in stdout
    step = torch.load(out / "ckpt.pt", weights_only=True)["step"]
    assert step > 0
    train_here(out, data_dir, f"--max_iters={step + 2}", "--init_from=resume", "--eval_interval=100000")
    assert max(train_losses(out)) == step + 2


def test_crash_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch):
    from checkpoint import load_checkpoint, save_checkpoint
    from model import GPT, GPTConfig
    model = GPT(GPTConfig(block_size=8, vocab_size=11, n_layer=1, n_head=1, n_embd=8))
    ckpt = {"arch": "gpt", "model_args": dict(vars(model.config)), "model": model.state_dict(), "step": 1,
            "config": {}, "data_meta": {}}
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint(ckpt, path)

    def dies_halfway(obj, f, *a, **k):  # torch.save writing into the temporary file, then the disk fills
        f.write(b"half a checkpoint")
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError):
        save_checkpoint(dict(ckpt, step=2), path)
    monkeypatch.undo()
    _, loaded = load_checkpoint(path)
    assert loaded["step"] == 1


def test_midtrain_from_hf_directory_and_export(tmp_path, data_dir):
    from transformers import GPT2Config, GPT2LMHeadModel
    hf_dir = tmp_path / "hf"
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=32, n_layer=2, n_head=2)).save_pretrained(hf_dir)
    out = tmp_path / "mid"
    train_here(out, data_dir, f"--init_from={hf_dir}", "--max_iters=4", "--eval_interval=4", "--reg=dispersion")
    from checkpoint import load_checkpoint
    from hf_io import to_hf
    model, ckpt = load_checkpoint(str(out))
    hf = to_hf(model)
    x = torch.randint(0, 257, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, model(x)[0], rtol=1e-5, atol=1e-5)
    # training moved the weights away from the starting point
    start = GPT2LMHeadModel.from_pretrained(hf_dir)
    assert not torch.allclose(start.transformer.h[0].mlp.c_fc.weight, hf.transformer.h[0].mlp.c_fc.weight)


def test_dry_run_touches_nothing(tmp_path, data_dir):
    out = tmp_path / "dry"
    r = train_here(out, "no_such_dataset", "--dry_run=True", "--max_tokens=100000")
    assert '"max_iters": 782' in r.stdout  # ceil(100000 / (4 windows * 32 tokens))
    assert not out.exists()


@pytest.fixture(scope="module")
def bad_hf_dirs(tmp_path_factory):
    """Two tiny GPT-2 folders: 64 positions and 300 ids; 64 positions and 100 ids (fewer than the bytes' 257)."""
    from transformers import GPT2Config, GPT2LMHeadModel
    d = tmp_path_factory.mktemp("bad_hf")
    for name, vocab, pos in (("hf", 300, 64), ("hf_small_vocab", 100, 64)):
        GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=pos, n_embd=16, n_layer=1,
                                   n_head=2)).save_pretrained(d / name)
    return {"hf": d / "hf", "hf_small_vocab": d / "hf_small_vocab"}


@pytest.mark.parametrize("args, code, needle", [
    (["--dataset=/nonexistent/data"], 1, "/nonexistent/data"),
    (["--reg=dispersoin"], 2, "--reg='dispersoin': must be one of 'none', 'dispersion'"),
    (["--init_from=resume"], 1, "ckpt.pt"),
    (["--block_size=100", "--init_from={hf}"], 1, "block_size=100 is beyond"),
    (["--init_from={hf_small_vocab}"], 1, "beyond the model's vocabulary of 100 ids"),
    (["--teacher={hf}"], 1, "error: teacher: its vocabulary (300) differs from the student's (257)"),
])
def test_bad_input_one_line_error(tmp_path, data_dir, bad_hf_dirs, args, code, needle):
    args = [a.format(**bad_hf_dirs) for a in args]
    r = train_here(tmp_path / "bad", data_dir, "--max_iters=2", *args, check=False)
    assert r.returncode == code, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, r.stderr


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, data_dir):
    out = tmp_path / "nan"
    train_here(out, data_dir, "--max_iters=2", "--eval_interval=2")
    before = (out / "ckpt.pt").read_bytes()
    r = train_here(out, data_dir, "--max_iters=50", "--eval_interval=1", "--learning_rate=1e30", "--grad_clip=0",
                   "--warmup_iters=0", "--init_from=resume", check=False)
    assert r.returncode != 0
    assert "non-finite at step" in r.stderr.strip().splitlines()[-1]
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]  # no temporary file left behind
    assert (out / "ckpt.pt").read_bytes() == before


# -----------------------------------------------------------------------------
# a stored record of one tiny run: absolute numbers, so a change to initialisation, sampling, the schedule or a
# loss shows even where comparing two runs of the same code cannot

RECORD = os.path.join(ROOT, "tests", "assets", "tiny_run.json")
RECORD_ARGS = ["--max_iters=12", "--eval_interval=12", "--warmup_iters=3", "--learning_rate=1e-2", "--min_lr=1e-3",
               "--reg=dispersion", "--reg_coeff=0.5", "--seed=7", "--condensation_samples=4"]


@pytest.fixture(scope="module")
def lcg_data_dir(tmp_path_factory):
    """Tokens from a first-order Markov chain driven by a 32-bit linear congruential generator written out here:
    the same bytes on every machine and every Python or numpy version (unlike text shipped with Python)."""
    state, token, ids = 12345, 0, []
    for _ in range(40_000):
        state = (1664525 * state + 1013904223) % 2 ** 32  # Numerical Recipes' constants
        token = (token * 7 + (state >> 16) % 4) % 16      # 16 of the 257 ids, 4 successors each: learnable
        ids.append(token)
    return byte_token_dir(tmp_path_factory.mktemp("lcg"), ids, 36_000)


def byte_token_dir(d, ids, n_train):
    """A dataset folder of byte-vocabulary tokens: ids[:n_train] to train.bin, the rest to val.bin, and meta.json."""
    ids = np.array(ids, dtype=np.uint16)
    ids[:n_train].tofile(d / "train.bin")
    ids[n_train:].tofile(d / "val.bin")
    (d / "meta.json").write_text(json.dumps({"tokenizer": "byte", "dtype": "uint16", "vocab_size": 257,
                                             "eot_token": 256}))
    return str(d)


@pytest.fixture(scope="module")
def record_run(tmp_path_factory, lcg_data_dir):
    """The stored record's 12-step run, trained once: the record and the named learning rates are read from it."""
    out = tmp_path_factory.mktemp("record") / "run"
    train_here(out, lcg_data_dir, *RECORD_ARGS)
    return out


def test_learning_rate_at_named_steps(record_run):
    """Linear warmup over 3 steps from 0 to 1e-2, then cosine to 1e-3 at step 12, read from metrics.jsonl. Steps
    count updates from 1; step s uses lr(s - 1): ((s - 1) / 3) * 1e-2 while warming up (the first update has lr 0,
    as transformers' schedule), then 1e-3 + 4.5e-3 * (1 + cos(pi * (s - 4) / 9)), written out to 8 digits."""
    lr = {m["step"]: m["lr"] for m in metrics(record_run) if "lr" in m}
    expected = {1: 0.0, 2: 3.3333333e-3, 3: 6.6666667e-3, 4: 1e-2, 8: 6.2814168e-3, 12: 1.2713832e-3}
    for s, v in expected.items():
        assert lr[s] == pytest.approx(v, abs=1e-10), s


def test_learning_rate_is_transformers_cosine_schedule(tmp_path, lcg_data_dir):
    """With warmup_frac and min_lr = 0 (the mid-training configs) every step's lr is what transformers'
    get_cosine_schedule_with_warmup gives the official runs, whose Trainer warms up for ceil(0.2 * max_steps)."""
    from transformers import get_cosine_schedule_with_warmup
    out = tmp_path / "hf_lr"
    train_here(out, lcg_data_dir, "--max_iters=17", "--eval_interval=17", "--warmup_frac=0.2", "--min_lr=0",
               "--learning_rate=3e-3")
    lr = {m["step"]: m["lr"] for m in metrics(out) if "lr" in m}
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=3e-3)
    sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=math.ceil(0.2 * 17), num_training_steps=17)
    for s in range(1, 18):
        assert abs(lr[s] - sched.get_last_lr()[0]) <= 1e-12, (s, lr[s], sched.get_last_lr()[0])
        opt.step()
        sched.step()


def test_tiny_run_matches_the_stored_record(record_run):
    """Per-step train and dispersion losses, the val loss and the live probe of a fixed 12-step run equal
    tests/assets/tiny_run.json (float32 on CPU; 1e-4 leaves room for another CPU's kernels, not for a change).
    To re-record after an intended change: TINY_RUN_RECORD=1 python -m pytest tests/test_train.py -k record"""
    out = record_run
    got = {"train_loss": {str(m["step"]): m["train_loss"] for m in metrics(out) if "train_loss" in m},
           "reg_loss": {str(m["step"]): m["reg_loss"] for m in metrics(out) if "reg_loss" in m},
           "eval": [m for m in metrics(out) if "val_loss" in m][-1]}
    if os.environ.get("TINY_RUN_RECORD"):
        os.makedirs(os.path.dirname(RECORD), exist_ok=True)
        with open(RECORD, "w") as f:
            json.dump({"args": TINY + RECORD_ARGS, **got}, f, indent=1)
    with open(RECORD) as f:
        want = json.load(f)
    assert want["args"] == TINY + RECORD_ARGS, "the record was made with other arguments: re-record it"
    assert sorted(got["train_loss"], key=int) == [str(s) for s in range(1, 13)]
    for key in ("train_loss", "reg_loss"):
        for s, v in want[key].items():
            assert got[key][s] == pytest.approx(v, abs=1e-4), (key, s)
    assert got["eval"]["val_loss"] == pytest.approx(want["eval"]["val_loss"], abs=1e-4)
    assert got["eval"]["mean_cossim"] == pytest.approx(want["eval"]["mean_cossim"], abs=1e-4)
    assert want["train_loss"]["12"] < want["train_loss"]["1"] - 0.5  # the record itself is of a run that learns


def test_time_per_step_is_over_the_steps_since_the_last_log(tmp_path, lcg_data_dir, monkeypatch):
    """max_iters=5, log_interval=4: the last line covers 1 step (5 % 4), and its ms_per_step is that step's time, not
    a quarter of it; each record says how many steps it covers. train.py runs under a fake clock that only optimizer
    steps advance, 0.25 s each: every log line's time per step is then 250 ms exactly, whatever the machine, however
    many steps the line covers."""
    clock = [time.time()]
    scaler_step = torch.amp.GradScaler.step

    def timed_step(self, *args, **kwargs):
        clock[0] += 0.25
        return scaler_step(self, *args, **kwargs)
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(torch.amp.GradScaler, "step", timed_step)
    out = tmp_path / "clock"
    train_here(out, lcg_data_dir, "--max_iters=5", "--log_interval=4", "--eval_interval=100",
               "--condensation_samples=2")
    monkeypatch.undo()
    logged = [m for m in metrics(out) if "train_loss" in m]
    assert [(m["step"], m["steps"]) for m in logged] == [(4, 4), (5, 1)]
    for m in logged:
        assert m["ms_per_step"] == pytest.approx(250.0), m
        assert m["tokens_per_s"] == pytest.approx(4 * 32 / 0.25), m  # batch_size * block_size tokens per step


SIXTH_REGULARIZER = '''

def uniformity(z, t=2.0):
    """Wang & Isola (2020): log mean_{i!=j} exp(-t ||zhat_i - zhat_j||^2), the tokens on the unit sphere."""
    zhat = F.normalize(float_tokens(z), dim=-1)
    dist2 = (2 - 2 * gram(zhat)).clamp_min(0)  # squared chord length, in [0, 4]
    return log_mean_exp(-t * dist2, off_diagonal=True)


REGULARIZERS['uniformity'] = uniformity
'''


def test_a_new_regularizer_is_one_function_and_one_line(tmp_path, data_dir):
    """As a researcher would: append a function and its registration to (a copy of) losses.py, touch nothing
    else, and train.py trains with it, logging its value."""
    import shutil
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in os.listdir(ROOT):
        if name.endswith(".py"):
            shutil.copy(os.path.join(ROOT, name), repo / name)
    with open(repo / "losses.py", "a") as f:
        f.write(SIXTH_REGULARIZER)
    out = tmp_path / "uni"
    cmd = [sys.executable, "train.py", f"--dataset={data_dir}", f"--out_dir={out}", *TINY, "--max_iters=3",
           "--eval_interval=3", "--reg=uniformity", "--reg_coeff=0.5"]
    r = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| uniformity -" in r.stdout
    reg = [m["reg_loss"] for m in metrics(out) if "reg_loss" in m]
    assert len(reg) == 3 and all(-8.0 <= v < 0.0 for v in reg), reg  # -t * dist2 lies in [-8, 0]


def test_training_clock_sums_resumes_and_leaves_out_lm_eval(monkeypatch):
    """The compute record (Table 2's training time, in ckpt.pt and eval.json): wall hours since the run's log began,
    times the processes, plus the hours the resumed checkpoint recorded, with the time inside not_training()
    (lm-eval) left out. A fake clock, on a process that is not the master (the clock runs on every process)."""
    import run_dir
    now = [1000.0]
    monkeypatch.setattr(run_dir.time, "time", lambda: now[0])
    log = run_dir.RunLog("unused", None, None, None, world_size=4, device_name="cpu",
                         resume_ckpt={"step": 3, "compute": {"hours": 1.0}}, active=False)
    now[0] += 3600  # an hour of training on 4 processes
    assert log.compute() == {"hours": 5.0, "processes": 4, "device": "cpu"}
    with log.not_training():
        now[0] += 7200  # lm-eval
    assert log.compute()["hours"] == 5.0
    now[0] += 1800
    assert log.compute()["hours"] == 7.0
