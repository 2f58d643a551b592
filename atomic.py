"""
Writing files so that nothing is lost or half-written: every output of every script goes through atomic_write,
and each output path is checked before the work that fills it (check_output).

    from atomic import atomic_write, check_output
    check_output('out/eval.json', 'out')                       # before the work: a one-line ValueError naming --out
    atomic_write('out/eval.json', json.dumps(results), rescue=True)   # text or bytes
    atomic_write('out/ckpt.pt', lambda f: torch.save(ckpt, f))        # or a function writing to a binary file

No torch here: figures.py, tables.py and data.py write their files without importing it (checkpoint.py imports
atomic_write and check_output from here, so `from checkpoint import atomic_write` works too).
"""
import fnmatch
import os
import re
import time

from configurator import one_line


STARTED = time.time()  # this process's start, near enough: a temporary file older than it is no write of ours


def atomic_write(path, content, rescue=False):
    """Write content to path atomically. content: str (text), bytes, or a function f(file) that writes to a
    binary file object (torch.save, fig.savefig, ...). The folder must exist. A reader never sees half a file;
    an exception (a full disk, Ctrl-C) while writing leaves the previous file intact and no temporary file, and
    the temporary file a kill leaves (path.<pid>.tmp) is removed by the next write of path (clean_stale).
    rescue=True, for results that took long to compute (str or bytes): if path cannot be written, the content goes
    to a new file in the current directory (else the temporary directory) and the OSError raised says where."""
    folder, name = os.path.split(os.path.abspath(path))
    clean_stale(folder, [name])
    tmp = f"{path}.{os.getpid()}.tmp"  # same folder: os.replace never crosses file systems; pid: no clash
    try:
        with open(tmp, 'wb') as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a power cut cannot leave an empty file in its place
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except OSError as e:
        if not rescue or callable(content):
            raise
        raise OSError(f"could not write {path} ({one_line(e)}); {rescued(name, content)}") from None
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def check_output(path, key, folder=False):
    """Before any work: a one-line ValueError naming --key unless path can be made what it is meant to be (a folder
    with folder=True, else a file): it must not exist as the other kind, and the nearest part of it that exists must
    be a folder this process can write in."""
    if folder and os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"--{key}={path} exists and is not a folder")
    if not folder and os.path.isdir(path):
        raise ValueError(f"--{key}={path} is a folder; it names a file")
    above = os.path.abspath(path if folder else os.path.dirname(os.path.abspath(path)))
    while not os.path.lexists(above):
        above = os.path.dirname(above)
    if not os.path.isdir(above):
        raise ValueError(f"--{key}={path} cannot be written: {above} is a file, not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ValueError(f"--{key}={path} cannot be written: no permission to write in {above}")


def rescued(name, content):
    """Write content (str or bytes) to a new file named like name in the current directory, else in the temporary
    directory, never over an existing file -> the sentence that says where it went (or that it could not)."""
    import tempfile
    stem, ext = os.path.splitext(name)
    data = content.encode() if isinstance(content, str) else content
    for folder in (os.getcwd(), tempfile.gettempdir()):
        try:
            fd, where = tempfile.mkstemp(suffix=ext, prefix=f'{stem}-', dir=folder)
            with os.fdopen(fd, 'wb') as f:
                f.write(data)
            return f"its content is in {where} instead"
        except OSError:
            continue
    return "nor anywhere else: it is lost"


def clean_stale(folder, names):
    """Remove the temporary files atomic_write left in folder when killed outright (SIGKILL, a power cut), for the
    files `names` (glob patterns: what the caller writes there): <name>.<pid>.tmp, whose process is gone and which
    is older than this process. Nothing else: not a user's file, not the temporary of a write in progress."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        m = re.fullmatch(r'(.+)\.(\d+)\.tmp', entry)
        if not m or int(m[2]) == os.getpid() or not any(fnmatch.fnmatchcase(m[1], n) for n in names):
            continue
        try:
            os.kill(int(m[2]), 0)
            continue  # its writer is alive (this machine): not ours to remove
        except ProcessLookupError:
            pass
        except OSError:  # alive, another user's
            continue
        path = os.path.join(folder, entry)
        try:
            if os.path.isfile(path) and os.path.getmtime(path) < STARTED:
                os.remove(path)
        except OSError:
            pass  # gone already (another cleaner), or not ours to remove
