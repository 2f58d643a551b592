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

    As a subprocess would: sys.exit(code) is the exit code, and an exception that escapes is exit 1 with its
    traceback on stderr (so that `"Traceback" not in r.stderr` still fails). What a run leaves in this process is
    undone after it: sys.argv, the working directory, the variables of `env` (set for the run only), the SIGINT and
    SIGTERM handlers, warning filters, and the out_dir lock train.py holds until its process ends (closed here)."""
    import contextlib
    import io
    import runpy
    import signal
    import subprocess
    import sys
    import traceback
    import warnings

    import run_dir
    locks, claim = [], run_dir.claim_out_dir

    def claim_and_keep(*a, **kw):  # train.py's lock would last as long as the process: closed after the run
        locks.append(claim(*a, **kw))
        return locks[-1]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        os.environ.update({k: str(v) for k, v in (env or {}).items()})
        sys.argv = [script, *map(str, args)]
        os.chdir(cwd)
        run_dir.claim_out_dir = claim_and_keep  # train.py imports it from the module when it runs
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            try:
                runpy.run_path(os.path.join(cwd, script), run_name='__main__')
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # noqa: BLE001 (as the interpreter would: the traceback, exit 1)
                traceback.print_exc()
                code = 1
    finally:
        run_dir.claim_out_dir = claim
        sys.argv = saved_argv
        os.chdir(saved_cwd)
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
