"""Trust: a checkpoint never runs code, and no slip or crash loses a run. Hostile pickles (torch's zip format, its
legacy format, a raw pickle) against every command that reads a checkpoint or a model directory; resume against
model keys that contradict the checkpoint; a new run aimed at another run's out_dir; two train.py in one out_dir;
SIGKILL in the middle of a run; a full disk and an out_dir gone at save time; missing, truncated and foreign files
for every command. Each command runs as a user would run it, judged by its exit code, its last line and the files
it left: its command line run in this process (conftest.run_in_process), and a fresh process for the run that is
killed.

OMP_NUM_THREADS=1 python -m pytest -q tests/test_trust.py
"""
import errno
import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, run_in_process  # noqa: F401 (test_parallel, test_trust2 import it here)
from test_train import ROOT, TINY, data_dir, metrics, train_here, train_losses  # noqa: F401 (data_dir: a fixture)

ENV = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")


class Hostile:
    """Unpickled, it creates `marker`: a stand-in for any code a pickle can run (os.system, ...)."""
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def write_hostile(path, payload, fmt):
    """payload with a Hostile object inside, as torch's zip format, its legacy format or a raw pickle."""
    if fmt == "zip":
        torch.save(payload, path)
    elif fmt == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=int(fmt[3:]))


def run(script, *args):
    """`python <script> <args>` in the repository, run in this process: -> subprocess.CompletedProcess."""
    return run_in_process(script, *args)


def snapshot(folder):
    """{name: bytes} of every file in folder: equal before and after means nothing was touched."""
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    """A finished tiny run (4 steps, checkpoints at 2 and 4). Tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("trust") / "run"
    train_here(out, data_dir, "--max_iters=4", "--eval_interval=2", "--condensation_samples=2")
    return out


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    """One local multiple-choice question, so that eval.py reaches its model loading offline."""
    d = tmp_path_factory.mktemp("tasks")
    (d / "test.jsonl").write_text(json.dumps({"question": "Is the sky blue?", "choices": ["yes", "no"], "label": 0}))
    (d / "tiny_mc.yaml").write_text(f"""task: tiny_mc
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    test: {d / 'test.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
metadata:
  version: 1.0
""")
    return str(d)


def read_ckpt_cli(kind, ckpt_dir, tmp_path, data_dir, task_dir):
    """Run one command that reads the checkpoint in ckpt_dir (a folder holding ckpt.pt)."""
    if kind == "resume":  # resume reads out_dir/ckpt.pt: the out_dir is the folder itself
        return run("train.py", f"--dataset={data_dir}", f"--out_dir={ckpt_dir}", *TINY, "--max_iters=6",
                   "--init_from=resume")
    if kind == "teacher":
        return run("train.py", f"--dataset={data_dir}", f"--out_dir={tmp_path / 'student'}", *TINY,
                   "--max_iters=2", f"--teacher={ckpt_dir}")
    if kind == "measure":
        return run("measure.py", f"--ckpt={ckpt_dir}", f"--out_dir={tmp_path / 'measure'}", f"--dataset={data_dir}",
                   "--seq_len=16", "--num_samples=2")
    if kind == "sample":
        return run("sample.py", f"--ckpt={ckpt_dir}", "--device=cpu", "--max_new_tokens=2")
    return run("eval.py", f"--ckpt={ckpt_dir}", "--tasks=tiny_mc", f"--include_path={task_dir}", "--device=cpu",
               f"--out={tmp_path / 'eval.json'}")


READERS = ["resume", "teacher", "measure", "sample", "eval"]

# -----------------------------------------------------------------------------
# a checkpoint is data, never code


def test_what_train_py_saves_loads_with_weights_only(run_dir, tmp_path):
    """Every part of ckpt.pt (the RNG states, optimizer, loss scaler, config, data meta, compute) passes torch's own
    safe loader, with nothing allowlisted."""
    ckpt = torch.load(run_dir / "ckpt.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == 4 and ckpt["arch"] == "gpt"
    assert {"model", "optimizer", "scaler", "config", "data_meta", "compute", "rng", "data_position"} <= set(ckpt)
    assert ckpt["rng"]["torch"].dtype == torch.uint8 and ckpt["config"]["n_layer"] == 2
    # float16 training has a live loss scaler; the active-forgetting embedding an optimizer group of its own
    from checkpoint import training_state
    from model import build_model
    model = build_model("gpt", 50, 8, 1, 2, 16)
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu", own_group=model.get_input_embeddings().weight)
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    x = torch.randint(0, 50, (2, 8))
    scaler.scale(model(x, x)[1]).backward()
    scaler.step(optimizer)
    scaler.update()
    state = training_state(model, optimizer, scaler, 1, {"seed": 1, "reg_loc": [1, 2], "mlp_hidden": None},
                           {"tokenizer": "byte"}, {"hours": 0.5, "processes": 1, "device": "cpu"})
    torch.save(state, tmp_path / "state.pt")
    back = torch.load(tmp_path / "state.pt", weights_only=True)
    assert back["scaler"] == scaler.state_dict() and back["scaler"]["scale"] == 65536.0
    saved, live = back["optimizer"]["state"], optimizer.state_dict()["state"]
    assert sorted(saved) == sorted(live) and len(live) == len(list(model.parameters()))
    for k in live:
        assert torch.equal(saved[k]["exp_avg"], live[k]["exp_avg"]) and saved[k]["exp_avg"].abs().sum() > 0
    assert back["optimizer"]["param_groups"][-1]["own_group"] is True


def marker(folder):
    return folder.parent / f"RAN_{folder.name}"


def hostile_checkpoint(folder, run_dir, fmt):
    """folder/ckpt.pt: the run's real checkpoint with a Hostile object added, whose marker is marker(folder)."""
    folder.mkdir(exist_ok=True)
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
    write_hostile(folder / "ckpt.pt", dict(ckpt, hook=Hostile(marker(folder))), fmt)
    return folder


@pytest.fixture(scope="module")
def hostile_dirs(tmp_path_factory, run_dir):
    """{fmt: folder holding a hostile ckpt.pt}."""
    return {fmt: hostile_checkpoint(tmp_path_factory.mktemp(f"hostile_{fmt}"), run_dir, fmt)
            for fmt in ("zip", "legacy", "raw4")}


@pytest.mark.parametrize("fmt", ["zip", "legacy", "raw4"])
@pytest.mark.parametrize("kind", READERS)
def test_hostile_checkpoint_never_runs(kind, fmt, hostile_dirs, tmp_path, data_dir, task_dir):
    folder = tmp_path / "hostile"
    shutil.copytree(hostile_dirs[fmt], folder)  # resume would write into it: each test has its own copy
    before = snapshot(folder)
    r = read_ckpt_cli(kind, folder, tmp_path, data_dir, task_dir)
    assert_one_line_error(r, "holds more than tensors and plain values", "--trust_checkpoint=True")
    assert not marker(hostile_dirs[fmt]).exists()
    after = snapshot(folder)
    assert after.pop("train.lock", None) is None or kind == "resume"  # only resume claims the folder
    assert after == before  # no ckpt.pt replaced, no metrics.jsonl or run.json written


def test_hostile_checkpoint_runs_only_when_trusted(run_dir, tmp_path):
    """The control of the test above: loaded with trust_checkpoint=True, the same files do run their code (so the
    marker would have shown it), and the model in them is the run's. Refused, raw pickles of protocol 2 (no FRAME
    opcode: the safe loader meets a GLOBAL first) and 4 alike. (torch.load reads no raw pickle even when trusted,
    but it runs the pickle's code before it finds out: the reason for never falling back.)"""
    from checkpoint import load_checkpoint
    want, _ = load_checkpoint(str(run_dir))
    for fmt in ("raw2", "raw4", "legacy", "zip"):
        folder = hostile_checkpoint(tmp_path / fmt, run_dir, fmt)
        with pytest.raises(ValueError, match=r"\((GLOBAL [\w.]+|Unsupported operand \d+)\), so it is not loaded"):
            load_checkpoint(str(folder))
        assert not marker(folder).exists()
        if fmt.startswith("raw"):
            continue
        model, ckpt = load_checkpoint(str(folder), trust_checkpoint=True)
        assert marker(folder).exists() and ckpt["step"] == 4
        for (name, a), b in zip(model.state_dict().items(), want.state_dict().values()):
            assert torch.equal(a, b), name


def test_an_old_file_with_numpy_rng_loads_only_when_trusted(run_dir, tmp_path):
    """A checkpoint holding numpy's and Python's RNG states (as nanoGPT-style scripts often save) is refused by
    default, with the opt-in named; trusted, it loads."""
    import random
    from checkpoint import load_checkpoint
    ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
    ckpt["rng"] = dict(ckpt["rng"], numpy=np.random.get_state(), python=random.getstate())
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="GLOBAL numpy.* --trust_checkpoint=True loads it with full pickle"):
        load_checkpoint(str(tmp_path / "old.pt"))
    _, got = load_checkpoint(str(tmp_path / "old.pt"), trust_checkpoint=True)
    assert got["rng"]["numpy"][0] == "MT19937" and got["step"] == 4


def hf_gpt2_dir(path, seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(seed)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=64, n_embd=16, n_layer=1, n_head=2))
    hf.save_pretrained(path)
    return hf


@pytest.mark.parametrize("kind", ["init_from", "teacher", "measure", "eval"])
def test_hostile_pytorch_model_bin_never_runs(kind, tmp_path, data_dir, task_dir):
    """A Hugging Face directory whose weights are a pytorch_model.bin with code in it: refused, never run."""
    d = tmp_path / "hf"
    hf = hf_gpt2_dir(d)
    os.remove(d / "model.safetensors")
    write_hostile(d / "pytorch_model.bin", dict(hf.state_dict(), hook=Hostile(tmp_path / "RAN")), "zip")
    if kind in ("init_from", "teacher"):
        r = run("train.py", f"--dataset={data_dir}", f"--out_dir={tmp_path / 'out'}", *TINY, "--max_iters=2",
                f"--{kind}={d}")
    elif kind == "measure":
        r = run("measure.py", f"--init_from={d}", f"--out_dir={tmp_path / 'm'}", f"--dataset={data_dir}",
                "--seq_len=16", "--num_samples=2")
    else:
        r = run("eval.py", f"--init_from={d}", "--tasks=tiny_mc", f"--include_path={task_dir}", "--device=cpu")
    assert_one_line_error(r, "pytorch_model.bin", "GLOBAL")
    assert not (tmp_path / "RAN").exists()
    assert not (tmp_path / "m").exists()
    if kind in ("init_from", "teacher"):  # train.py claims its out_dir first, and writes nothing in it
        assert os.listdir(tmp_path / "out") == ["train.lock"]

# -----------------------------------------------------------------------------
# resume keeps the checkpoint's model


def test_resume_refuses_model_keys_that_contradict_the_checkpoint(run_dir, tmp_path, data_dir):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    before = snapshot(out)
    for arg, key, given, has in [("--n_layer=4", "n_layer", "4", "2"),
                                 ("--n_layer=6", "n_layer", "6", "2"),  # train.py's default, given explicitly
                                 ("--mlp_hidden=100", "mlp_hidden", "100", "128"),  # GPT's 4 * n_embd
                                 ("--arch=qwen3", "arch", "'qwen3'", "'gpt'")]:
        r = run("train.py", f"--dataset={data_dir}", f"--out_dir={out}", *TINY, "--max_iters=6", "--init_from=resume",
                arg)
        assert_one_line_error(r, f"--{key}={given} contradicts the checkpoint", f"{key}={has}")
        after = snapshot(out)
        assert after.pop("train.lock") and {k: v for k, v in before.items() if k != "train.lock"} == after


def test_resume_takes_the_model_from_the_checkpoint_and_records_changes(run_dir, tmp_path, data_dir):
    """Resumed with train.py's default model keys (6 layers, 384 wide) and the model keys it was made with: both
    train the checkpoint's 2-layer model. The keys that may change do, and run.json says what changed."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    import figures
    with pytest.MonkeyPatch.context() as mp:  # no PNG looked at: none rendered
        mp.setattr(figures, "save_figure", lambda fig, path: fig)
        r = run("train.py", f"--dataset={data_dir}", f"--out_dir={out}", "--block_size=32", "--batch_size=4",
                "--compile=False", "--device=cpu", "--eval_iters=2", "--log_interval=1", "--max_iters=6",
                "--eval_interval=3", "--learning_rate=1e-3", "--init_from=resume", "--condensation_samples=2")
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / "run.json") as f:
        record = json.load(f)
    assert record["resumed_from_step"] == 4
    changes = record["resumed_with_changes"]
    assert changes["learning_rate"] == [3e-3, 1e-3] and changes["max_iters"] == [4, 6]
    assert changes["eval_interval"] == [2, 3] and changes["warmup_iters"] == [2, 100]
    assert not set(changes) & {"n_layer", "n_head", "n_embd", "init_from"}, changes
    assert record["config"]["n_layer"] == 2 and record["config"]["n_embd"] == 32
    assert record["model"]["model_args"]["n_layer"] == 2
    assert "learning_rate 0.003 -> 0.001" in r.stdout
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["step"] == 6 and ckpt["config"]["learning_rate"] == 1e-3 and ckpt["config"]["n_layer"] == 2
    assert sorted(train_losses(out)) == list(range(1, 7))
    # the model keys given again, as the first command had them: the same model, so no error
    train_here(out, data_dir, "--max_iters=7", "--eval_interval=7", "--init_from=resume", "--condensation_samples=2")
    assert max(train_losses(out)) == 7

# -----------------------------------------------------------------------------
# no slip loses a run


def test_a_new_run_never_replaces_another_runs_checkpoint(run_dir, tmp_path, data_dir):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    before = snapshot(out)
    r = train_here(out, data_dir, "--max_iters=2", "--eval_interval=2", check=False, draw=True)
    assert_one_line_error(r, "holds another run's checkpoint", "--init_from=resume", "--overwrite=True")
    assert snapshot(out) == before
    # a snapshot alone (a run stopped before its first ckpt.pt) is a checkpoint too
    os.remove(out / "ckpt.pt")
    torch.save({}, out / "ckpt_000002.pt")
    before = snapshot(out)
    r = train_here(out, data_dir, "--max_iters=2", "--eval_interval=2", check=False, draw=True)
    assert_one_line_error(r, "ckpt_000002.pt", "--overwrite=True")
    assert snapshot(out) == before
    # told to, it replaces the run: the old snapshot is gone, not mistaken for one of this run's
    train_here(out, data_dir, "--max_iters=3", "--eval_interval=3", "--overwrite=True", "--condensation_samples=2")
    assert torch.load(out / "ckpt.pt", weights_only=True)["step"] == 3
    assert not (out / "ckpt_000002.pt").exists()
    assert sorted(train_losses(out)) == [1, 2, 3]


# train.py in a process of its own, as `python train.py ...` runs it, without drawing training.png at each eval (its
# matplotlib import and rendering are seconds of the run, and no test of a killed run looks at it)
UNDRAWN_TRAIN = ("import runpy, sys, figures; figures.plot_training = lambda *a, **k: None; sys.argv[0] = 'train.py'; "
                 "runpy.run_path('train.py', run_name='__main__')")


def start_training(out, data_dir, *args):
    cmd = [sys.executable, "-c", UNDRAWN_TRAIN, f"--dataset={data_dir}", f"--out_dir={out}", *TINY, *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_step(out, step, process, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read()[-3000:]
        try:
            if max(train_losses(out), default=0) >= step:
                return
        except (OSError, ValueError):
            pass  # not written yet, or a line being written
        time.sleep(0.1)
    raise AssertionError(f"step {step} not reached in {timeout}s")


def test_second_writer_refused_and_sigkill_loses_nothing(tmp_path, data_dir):
    """A run in progress: a second train.py in its out_dir is refused and changes nothing. Then the run is killed
    with SIGKILL past its last save. ckpt.pt loads, the lock is gone with the process, and resuming leaves each
    step in metrics.jsonl once, in order; the steps logged twice are recomputed to the same losses (exact resume),
    not merely deleted."""
    out = tmp_path / "run"
    schedule = ["--eval_interval=40", "--lr_decay_iters=100000"]  # the lr schedule does not depend on max_iters
    p = start_training(out, data_dir, "--max_iters=100000", *schedule)
    try:
        wait_for_step(out, 45, p)
        for args in (["--overwrite=True"], ["--init_from=resume"]):
            r = train_here(out, data_dir, "--max_iters=10", *args, check=False, draw=True)
            assert_one_line_error(r, f"{out} is in use by another train.py (pid {p.pid})")
        while not 5 <= max(train_losses(out)) % 40 <= 30:  # well past a save, well before the next one
            time.sleep(0.01)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    from checkpoint import load_checkpoint
    _, ckpt = load_checkpoint(str(out))
    saved = ckpt["step"]
    logged = train_losses(out)
    last = max(logged)
    assert saved % 40 == 0 and saved < last, (saved, last)  # steps past the checkpoint were logged
    train_here(out, data_dir, f"--max_iters={last + 3}", *schedule, "--init_from=resume", "--condensation_samples=2")
    steps = [m["step"] for m in metrics(out) if "train_loss" in m]
    assert steps == list(range(1, last + 4))
    again = train_losses(out)
    for s in range(saved + 1, last + 1):
        assert abs(again[s] - logged[s]) <= 1e-5, (s, again[s], logged[s])


def test_full_disk_at_save_time_keeps_the_previous_checkpoint(run_dir, tmp_path, data_dir):
    """The kernel refuses the write past a file-size limit (RLIMIT_FSIZE, EFBIG: what a full disk does to the
    write, and it holds for root too): metrics.jsonl fits, the checkpoint does not."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    before = (out / "ckpt.pt").read_bytes()
    limit = 64 * 1024  # the checkpoint is ~450 KB

    # this process's soft limit, for the run only (Python ignores SIGXFSZ, so the write fails with EFBIG as it does
    # in a fresh process)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        r = train_here(out, data_dir, "--max_iters=8", "--eval_interval=2", "--init_from=resume", check=False,
                       draw=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert_one_line_error(r, f"could not save {out}/ckpt.pt at step 6", "File too large", "intact")
    assert (out / "ckpt.pt").read_bytes() == before
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert sorted(train_losses(out)) == list(range(1, 7))  # steps 5 and 6 logged; resume drops what is past 4


def test_save_errors_are_one_line_and_leave_the_previous_file(tmp_path, monkeypatch):
    """In-process: a disk that fills up halfway through torch.save (ENOSPC), and an out_dir replaced by a file
    (as root, chmod cannot make a folder unwritable; this can). The previous ckpt.pt stays, no temporary file."""
    from checkpoint import load_checkpoint, save_checkpoint
    from model import build_model
    model = build_model("gpt", 11, 8, 1, 1, 8)
    state = {"arch": "gpt", "model_args": dict(vars(model.config)), "model": model.state_dict(), "step": 1}
    out = tmp_path / "out"
    out.mkdir()
    save_checkpoint(state, str(out / "ckpt.pt"))
    before = (out / "ckpt.pt").read_bytes()
    real_save = torch.save

    def fills_the_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(torch, "save", fills_the_disk)
    with pytest.raises(OSError, match="No space left on device"):
        save_checkpoint(dict(state, step=2), str(out / "ckpt.pt"))
    monkeypatch.undo()
    assert (out / "ckpt.pt").read_bytes() == before and os.listdir(out) == ["ckpt.pt"]
    assert load_checkpoint(str(out))[1]["step"] == 1
    shutil.move(out, tmp_path / "moved")
    out.write_text("a file where the out_dir was")
    with pytest.raises(NotADirectoryError):
        save_checkpoint(dict(state, step=2), str(out / "ckpt.pt"))
    assert (tmp_path / "moved" / "ckpt.pt").read_bytes() == before


def test_out_dir_that_cannot_be_made_is_one_line(tmp_path, data_dir):
    (tmp_path / "file").write_text("not a folder")
    r = train_here(tmp_path / "file" / "run", data_dir, "--max_iters=2", check=False, draw=True)  # a usage error
    assert_one_line_error(r, f"{tmp_path / 'file'} is a file, not a folder", code=2)

# -----------------------------------------------------------------------------
# missing, truncated and foreign files: one line, a non-zero exit, never a traceback


@pytest.fixture(scope="module")
def damaged_dirs(tmp_path_factory, run_dir):
    """{case: folder holding a ckpt.pt that is not one} (the 'missing' folder has no ckpt.pt)."""
    good = (run_dir / "ckpt.pt").read_bytes()
    dirs = {}
    for case in ("missing", "truncated", "foreign", "lying"):
        d = tmp_path_factory.mktemp(case)
        if case == "truncated":  # cut short, as by a copy that did not finish
            (d / "ckpt.pt").write_bytes(good[:len(good) // 2])
        elif case == "foreign":  # someone else's torch file
            torch.save({"state_dict": {"w": torch.zeros(3)}, "epoch": 3}, d / "ckpt.pt")
        elif case == "lying":  # a safe file whose model_args claim a model 1000x the size of its tensors
            ckpt = torch.load(run_dir / "ckpt.pt", weights_only=True)
            ckpt["model_args"] = dict(ckpt["model_args"], n_layer=64, n_embd=4096, n_head=32)
            torch.save(ckpt, d / "ckpt.pt")
        dirs[case] = d
    return dirs


CHECKPOINT_ERRORS = {"missing": "no checkpoint at", "truncated": "is damaged or not a torch file",
                     "foreign": "is not a train.py checkpoint", "lying": "its tensors against its model_args"}


@pytest.mark.parametrize("case", ["missing", "truncated", "foreign"])
@pytest.mark.parametrize("kind", READERS)
def test_damaged_checkpoint_is_one_line(kind, case, damaged_dirs, tmp_path, data_dir, task_dir):
    folder = tmp_path / case
    shutil.copytree(damaged_dirs[case], folder)
    before = snapshot(folder)
    r = read_ckpt_cli(kind, folder, tmp_path, data_dir, task_dir)
    assert_one_line_error(r, CHECKPOINT_ERRORS[case] if kind != "teacher" or case != "missing" else "teacher")
    after = snapshot(folder)
    after.pop("train.lock", None)
    assert after == before


def test_damaged_checkpoints_in_process(damaged_dirs):
    """load_checkpoint, which every command uses, on each damaged file: a one-line ValueError, and the lying
    model_args allocate nothing (the shapes are checked on the meta device first)."""
    from checkpoint import load_checkpoint
    for case, folder in damaged_dirs.items():
        with pytest.raises((FileNotFoundError, ValueError), match=CHECKPOINT_ERRORS[case]) as info:
            load_checkpoint(str(folder))
        assert "\n" not in str(info.value)
    text = damaged_dirs["missing"].parent / "text.pt"
    text.write_text("a text file named like a checkpoint")
    with pytest.raises(ValueError, match="is damaged or not a torch file"):
        load_checkpoint(str(text))


@pytest.fixture(scope="module")
def damaged_hf_dirs(tmp_path_factory):
    dirs = {}
    for case in ("truncated", "foreign"):
        d = tmp_path_factory.mktemp(f"hf_{case}")
        hf_gpt2_dir(d)
        if case == "truncated":
            data = (d / "model.safetensors").read_bytes()
            (d / "model.safetensors").write_bytes(data[:len(data) // 2])
        else:
            (d / "config.json").write_text(json.dumps(["not", "a", "config"]))
        dirs[case] = d
    return dirs


@pytest.mark.parametrize("case, needle", [("truncated", "could not read"), ("foreign", "expected a JSON object")])
@pytest.mark.parametrize("kind", ["init_from", "teacher", "measure", "eval"])
def test_damaged_model_directory_is_one_line(kind, case, needle, damaged_hf_dirs, tmp_path, data_dir, task_dir):
    d = damaged_hf_dirs[case]
    if kind == "measure" and case == "foreign":  # measure.py reads config.json itself, with its own message
        needle = str(d)
    if kind in ("init_from", "teacher"):
        r = run("train.py", f"--dataset={data_dir}", f"--out_dir={tmp_path / 'out'}", *TINY, "--max_iters=2",
                f"--{kind}={d}")
    elif kind == "measure":
        r = run("measure.py", f"--init_from={d}", f"--out_dir={tmp_path / 'm'}", f"--dataset={data_dir}",
                "--seq_len=16", "--num_samples=2")
    else:
        r = run("eval.py", f"--init_from={d}", "--tasks=tiny_mc", f"--include_path={task_dir}", "--device=cpu")
    assert_one_line_error(r, needle)


@pytest.fixture(scope="module")
def damaged_data_dirs(tmp_path_factory, data_dir):
    dirs = {}
    for case in ("missing", "truncated", "foreign_meta", "foreign_ids"):
        d = tmp_path_factory.mktemp(f"data_{case}")
        shutil.copytree(data_dir, d, dirs_exist_ok=True)
        if case == "missing":
            os.remove(d / "val.bin")
        elif case == "truncated":  # an odd number of bytes: half a uint16 token at the end
            for split in ("train", "val"):
                data = (d / f"{split}.bin").read_bytes()
                (d / f"{split}.bin").write_bytes(data[:len(data) // 2 + 1])
        elif case == "foreign_meta":
            (d / "meta.json").write_text('{"tokenizer": "byte", "dtype": "uint16"')  # cut short
        else:  # token ids that meta.json's vocabulary does not have: another dataset's .bin
            for split in ("train", "val"):
                np.full(5000, 40000, dtype=np.uint16).tofile(d / f"{split}.bin")
        dirs[case] = d
    return dirs


@pytest.mark.parametrize("case, needle", [("missing", "val.bin not found"),
                                          ("truncated", "is not a whole number of uint16 tokens"),
                                          ("foreign_meta", "not valid JSON"),
                                          ("foreign_ids", "40000")])
@pytest.mark.parametrize("kind", ["train", "measure"])
def test_damaged_data_directory_is_one_line(kind, case, needle, damaged_data_dirs, run_dir, tmp_path):
    d = damaged_data_dirs[case]
    if kind == "train":
        r = run("train.py", f"--dataset={d}", f"--out_dir={tmp_path / 'out'}", *TINY, "--max_iters=2")
    else:
        r = run("measure.py", f"--ckpt={run_dir}", f"--out_dir={tmp_path / 'm'}", f"--dataset={d}", "--seq_len=16",
                "--num_samples=2")
    assert_one_line_error(r, needle)
    assert not (tmp_path / "m").exists()
