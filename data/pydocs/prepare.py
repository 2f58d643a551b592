"""
Prepare pydocs, the offline default corpus: about 2 MB of English prose that ships with every Python.

    python data/pydocs/prepare.py                      # -> data/pydocs/{train,val}.bin, meta.json (byte tokens)
    python data/pydocs/prepare.py --tokenizer=gpt2 --out_dir=data/pydocs_gpt2

data.dataset_dir('pydocs') runs this script by itself on first use (one process of a torchrun job for all), so
`python train.py` works with no download anywhere. The documents, in order:
  1. every topic of the language reference that `help()` shows (pydoc_data.topics), sorted by topic name;
  2. one document per standard-library module and submodule, sorted by name: the module docstring, then the
     docstrings of the classes, methods and functions the module defines, sorted by name, each under its
     qualified name. A docstring already used anywhere before is dropped (inherited and re-exported ones).
Documents range from a few bytes to 60 KB, so val.bin takes them by size: of the documents ranked by
length, the middle one of every `val_every` goes to val, which thus has the corpus's mix of short and long
documents and about 1/val_every of its text.
The bytes depend only on the Python version and OS family: modules that are optional builds (ssl, sqlite3,
...), platform-only, GUI, or that act when imported (this, antigravity) are skipped. Run it in a fresh
interpreter, as dataset_dir does: libraries that patch the standard library (transformers, torch) change it.
"""

import contextlib
import importlib
import inspect
import io
import os
import pkgutil
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from configurator import configure, die  # noqa: E402
from data import write_tokens  # noqa: E402

# -----------------------------------------------------------------------------
out_dir = ''         # '' = this script's folder
tokenizer = 'byte'   # 'byte' needs no download; 'gpt2' or a hub id also work
val_every = 20       # 1 in 20 documents (about 5% of the text) is held out as val.bin
# -----------------------------------------------------------------------------

SKIP = {
    'antigravity', 'this', 'idlelib', 'turtledemo', 'tkinter', 'turtle', 'rlcompleter',  # GUI / act on import
    'distutils', 'lib2to3', 'ensurepip', 'venv',  # split into separate packages by some Linux distributions
    'bz2', 'ctypes', 'curses', 'dbm', 'lzma', 'readline', 'sqlite3', 'ssl', 'zlib', 'pyexpat',  # optional builds
    'crypt', 'fcntl', 'grp', 'mmap', 'msilib', 'msvcrt', 'nis', 'nt', 'ossaudiodev', 'posix', 'pty', 'pwd',
    'resource', 'select', 'spwd', 'syslog', 'termios', 'tty', 'winreg', 'winsound',  # one platform only
    'encodings',  # ~120 codec tables, no prose
}


def _quiet_import(name):
    """Import a module, or None; warnings (deprecated modules) and anything printed are swallowed."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter('ignore')
        try:
            return importlib.import_module(name)
        except Exception:
            return None


def _skipped(qualname):
    parts = qualname.split('.')
    # private modules (and __main__ ones, which run on import), test suites, Windows-only (windows_events, ..._win32)
    return parts[0] in SKIP or any(p.startswith(('_', 'test')) or 'win' in p for p in parts)


def module_names():
    """Public stdlib modules and submodules, sorted. sys.stdlib_module_names is fixed per Python version."""
    names = []
    for top in sorted(sys.stdlib_module_names):
        if _skipped(top) or _quiet_import(top) is None:
            continue
        names.append(top)
        path = getattr(sys.modules[top], '__path__', None)
        if path:  # a package: its submodules at every depth (walk_packages imports subpackages to recurse)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter('ignore')
                names += [m.name for m in pkgutil.walk_packages(path, top + '.', onerror=lambda name: None)
                          if not _skipped(m.name)]
    return sorted(set(names))


def _docstrings(module):
    """(qualified name, docstring) of a module and of what it defines, in a fixed order."""
    name = module.__name__
    own = (name, '_' + name.rsplit('.', 1)[-1])  # C accelerators (_heapq for heapq) count as the module's own
    yield name, module.__doc__
    for attr, obj in sorted(vars(module).items()):
        if attr.startswith('__') or getattr(obj, '__module__', None) not in own:
            continue
        if inspect.isclass(obj):
            yield f'{name}.{attr}', obj.__doc__
            for member_name, member in sorted(vars(obj).items()):
                if getattr(member, '__module__', name) not in own:
                    continue  # patched in by some other library (transformers adds logging.Logger.warning_once)
                if callable(member) or isinstance(member, (property, staticmethod, classmethod)):
                    yield f'{name}.{attr}.{member_name}', getattr(member, '__doc__', None)
        elif callable(obj):
            yield f'{name}.{attr}', obj.__doc__


def documents():
    """The corpus as a list of strings, deterministic (everything sorted, no addresses, no hash order)."""
    from pydoc_data.topics import topics
    docs = list(dict.fromkeys(topics[key] for key in sorted(topics)))  # a few topics share one text
    seen = set(docs)
    for name in module_names():
        module = _quiet_import(name)
        if module is None:
            continue
        blocks = []
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # touching deprecated aliases (typing.io) warns
            for qualname, doc in _docstrings(module):
                if not isinstance(doc, str):
                    continue
                doc = inspect.cleandoc(doc).strip()
                if doc and doc not in seen:
                    seen.add(doc)
                    blocks.append(f'{qualname}\n\n{doc}')
        if blocks:
            docs.append('\n\n'.join(blocks) + '\n')
    return docs


if __name__ == '__main__':
    configure(globals())
    if val_every < 2:
        die(f"--val_every must be at least 2, got {val_every}", 2)
    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    t0 = time.time()
    docs = documents()
    by_length = sorted(range(len(docs)), key=lambda i: (len(docs[i].encode()), i))
    held_out = set(by_length[val_every // 2::val_every])
    train = [d for i, d in enumerate(docs) if i not in held_out]
    val = [d for i, d in enumerate(docs) if i in held_out]
    print(f"pydocs: {len(docs)} documents, {sum(len(d.encode()) for d in docs):,} bytes of UTF-8 text "
          f"(Python {sys.version_info.major}.{sys.version_info.minor})")
    try:
        write_tokens(out_dir, tokenizer, {'train': train, 'val': val})
    except (ValueError, FileNotFoundError) as e:
        die(str(e))
    print(f"done in {time.time() - t0:.1f}s")

# Python 3.11.7 on Linux, byte tokenizer (0.6 s):
# pydocs: 373 documents, 1,969,518 bytes of UTF-8 text (Python 3.11)
# train.bin: 354 documents, 1,844,771 tokens (uint16)
# val.bin: 19 documents, 125,120 tokens (uint16)
