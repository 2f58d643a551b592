"""Shared test setup: hermetic (no hub, no downloads), CPU-only, deterministic.

Run the whole suite with: python -m pytest -q
"""
import os

# read once at import time by huggingface_hub / datasets / transformers: set before anything imports them
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")
# pytest-xdist runs the suite in one worker per core (pytest.ini: -n auto): one thread each, or the workers' OpenMP
# threads oversubscribe the cores, which made the same runs ~10x slower here
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def assert_one_line_error(r, *needles, code=1):
    """A CLI's refusal, as every script gives it: exit `code`, no traceback, and a last stderr line `error: ...` that
    holds every needle. Test files import it from here (the tests folder is on sys.path)."""
    assert r.returncode == code, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), r.stderr[-2000:]
    for needle in needles:
        assert needle in last, last


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_in_process(script, *args, env=None, cwd=ROOT):
    """A script's command line (`python <script> <args>` in the repository) run in this process, judged as a
    subprocess is: -> subprocess.CompletedProcess with its exit code, stdout and stderr. A subprocess costs 2-5 s of
    imports (torch, transformers, lm-eval) that prove nothing; the suite runs most commands here instead, and keeps
    subprocesses where the process itself is what a test checks: torchrun, signals, kills, what a fresh process
    imports, environment variables read at import time, a copy of the repository with edited sources.

    As a subprocess would: sys.exit(code) is the exit code, an exception that escapes is exit 1 with its traceback
    on stderr (so that `"Traceback" not in r.stderr` still fails), the script's folder is first on sys.path, and
    what libraries log (transformers, datasets, huggingface_hub: logging handlers bound to this process's stderr,
    or made during the run) is in its stderr. What a run leaves in this process is undone after it: sys.argv,
    sys.path, the working directory, the variables of `env` (set for the run only), the SIGINT and SIGTERM
    handlers, warning filters, torch's global RNG and TF32 switches, logging handlers' streams, and the out_dir
    lock train.py holds until its process ends (closed here). Child processes a script starts still write to this
    process's own file descriptors."""
    import contextlib
    import io
    import logging
    import runpy
    import signal
    import subprocess
    import sys
    import traceback
    import warnings

    import torch

    import run_dir
    locks, claim = [], run_dir.claim_out_dir

    def claim_and_keep(*a, **kw):  # train.py's lock would last as long as the process: closed after the run
        locks.append(claim(*a, **kw))
        return locks[-1]

    def stream_handlers():
        loggers = [logging.getLogger()] + [g for g in logging.Logger.manager.loggerDict.values()
                                           if isinstance(g, logging.Logger)]
        return {h for g in loggers for h in g.handlers if type(h) is logging.StreamHandler}
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_argv, saved_path, saved_cwd = sys.argv, list(sys.path), os.getcwd()
    saved_rng = torch.get_rng_state()
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    real_out, real_err = sys.stdout, sys.stderr
    out, err = io.StringIO(), io.StringIO()
    moved = {h: h.stream for h in stream_handlers() if h.stream in (real_err, sys.__stderr__, real_out, sys.__stdout__)}
    code = 0
    try:
        os.environ.update({k: str(v) for k, v in (env or {}).items()})
        sys.argv = [script, *map(str, args)]
        path = os.path.join(cwd, script)
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        os.chdir(cwd)
        run_dir.claim_out_dir = claim_and_keep  # train.py imports it from the module when it runs
        for h, stream in moved.items():
            h.setStream(out if stream in (real_out, sys.__stdout__) else err)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            try:
                runpy.run_path(path, run_name='__main__')
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: BLE001 (as the interpreter would: the traceback, exit 1)
                traceback.print_exc()
                code = 1
    finally:
        run_dir.claim_out_dir = claim
        for h in stream_handlers():  # those made during the run hold its streams: back to this process's
            if h.stream is out or h.stream is err:
                h.setStream(moved.get(h, real_out if h.stream is out else real_err))
        sys.argv = saved_argv
        sys.path[:] = saved_path
        os.chdir(saved_cwd)
        torch.set_rng_state(saved_rng)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_tf32
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for s, h in handlers.items():
            signal.signal(s, h)
        for lock in locks:
            lock.close()
    return subprocess.CompletedProcess([script, *map(str, args)], code, out.getvalue(), err.getvalue())
