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
