"""
Configuration for every script: module-level defaults, then a config file, then command-line overrides.

    python train.py config/midtrain_gpt2_disp.py --batch_size=8 --reg_coeff 0.5

A script writes its defaults as plain module-level names at the top, annotated where a default alone does not
say what it accepts, and calls configure() right after them:

    batch_size = 8                 # an int: only ints
    mlp_hidden: int | None = None  # the annotation is the type check
    config = configure(globals())

The keys are the names defined before that call (nanoGPT's config_keys snapshot): anything defined later, and
any ALL_CAPS module constant, is never a key. configure() (1) runs the optional config file (plain Python
assignments; it may import its family's base, `from config.midtrain_gpt2 import *`), (2) applies `--key=value`
or `--key value` overrides, parsed as Python literals (a bare word stays a string), (3) type-checks each against
its annotation, else its default's type (an int is fine for a float; a None default without annotation takes
any literal), and (4) writes the result back into the script's globals. Any mistake (unknown key, wrong type,
missing file) is one line on stderr and exit code 2, before the script has touched data, network or disk.

A script that must be importable without reading the command line (measure.py, eval.py: train.py imports
their functions) takes the snapshot at the same place, `CONFIG_KEYS = config_keys(globals())`, and configures
later in main() with `configure(globals(), keys=CONFIG_KEYS)`.
"""

import ast
import difflib
import os
import sys
import types as pytypes
import typing

CONFIG_TYPES = (int, float, bool, str, type(None), list, tuple)


def die(msg, code=1):
    """Print a one-line error and exit. Scripts use it for every user-facing failure."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def one_line(e):
    """An exception as one line: its message's first line, after the type name unless it is one of the kinds our
    code raises with a full sentence (ValueError, FileNotFoundError)."""
    lines = str(e).strip().splitlines()
    first = lines[0].strip() if lines else ''
    if not first:
        return type(e).__name__
    return first if type(e) in (ValueError, FileNotFoundError) else f"{type(e).__name__}: {first}"


def config_keys(namespace):
    """The names of `namespace` (a script's globals()) that are config keys now: public, not ALL_CAPS, holding a
    literal (number, bool, str, None, list, tuple). Modules, functions and classes never are."""
    return [k for k, v in namespace.items()
            if not k.startswith('_') and not k.isupper() and isinstance(v, CONFIG_TYPES)]


def _allowed_types(annotation):
    """An annotation (int, int | None, typing.Optional[int], list[int], ...) -> tuple of plain types."""
    if isinstance(annotation, pytypes.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for a in typing.get_args(annotation) for t in _allowed_types(a))
    if annotation is None:
        return (type(None),)
    return (typing.get_origin(annotation) or annotation,)


def _type_name(allowed):
    return " or ".join("None" if t is type(None) else t.__name__ for t in allowed)


def _check(key, value, allowed):
    """Return value if its type is allowed (int is fine for float, a tuple is fine for list), else die."""
    if type(None) in allowed and value is None:
        return value
    if isinstance(value, bool):  # bool is an int subclass: only accept it where bool is allowed
        ok = bool in allowed
    elif isinstance(value, int) and float in allowed and int not in allowed:
        value, ok = float(value), True
    elif isinstance(value, (list, tuple)) and (list in allowed or tuple in allowed):
        ok = True
        value = list(value) if list in allowed else tuple(value)
    else:
        ok = type(value) in allowed
    if not ok:
        die(f"--{key} expects {_type_name(allowed)}, got {value!r} ({type(value).__name__})", 2)
    return value


def _parse_value(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word such as --dataset=pydocs is a string


class _Assignments(dict):
    """The namespace a config file runs in: seeded with the defaults, so that the file may read them
    (`max_iters = 2 * max_iters`), and recording every name the file assigns. Only those are the keys the file
    sets: a default it merely reads is not, and one it assigns is, even to the default's own value. The record is
    kept by the interpreter itself, so it sees what a file can do: plain, tuple and augmented assignments, `for`
    targets, and `from config.base import *` (a base runs as a module of its own, so it assigns exactly the names
    it brings, and those of any base it imports in turn). Module-level code stores into a namespace that is not
    a plain dict through __setitem__; a comprehension's or a function's own variables never reach it. Neither the
    values (a key set to its default's value is set all the same) nor a reading of the source (which cannot follow
    an `if`, or a base's own imports) could tell the keys set from the defaults as surely."""

    def __init__(self, defaults):
        super().__init__(defaults)
        self.assigned = set()

    def __setitem__(self, key, value):
        self.assigned.add(key)
        super().__setitem__(key, value)


def configure(namespace, argv=None, keys=None, types=None, given=None):
    """Resolve the config of a script. namespace: its globals(); keys: its config keys (default: the snapshot
    config_keys(namespace) now); types: {key: tuple of types}, for a key whose annotation cannot say it; given: a
    set that receives the keys the config file (or a base it imports) assigned or the command line set, whatever
    their value, and never a default the file only read (train.py checks those against a checkpoint it resumes,
    so a default must not count as given). Returns the resolved {key: value} dict."""
    argv = sys.argv[1:] if argv is None else list(argv)
    keys = config_keys(namespace) if keys is None else list(keys)
    annotations = namespace.get('__annotations__', {})
    defaults = {k: namespace[k] for k in keys}
    allowed = {}
    for k, v in defaults.items():
        if types and k in types:
            allowed[k] = tuple(types[k])
        elif k in annotations:
            allowed[k] = _allowed_types(annotations[k])
        elif v is None:  # a None default without annotation accepts any literal
            allowed[k] = CONFIG_TYPES
        elif isinstance(v, (list, tuple)):
            allowed[k] = (list, tuple)
        else:
            allowed[k] = (type(v),)

    def unknown(key):
        close = difflib.get_close_matches(key, list(defaults), n=3)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        die(f"unknown config key '{key}'{hint}", 2)

    if "-h" in argv or "--help" in argv:
        print("keys (override with --key=value; a config file may come first):")
        for k, v in defaults.items():
            print(f"  --{k}={v!r}")
        sys.exit(0)

    config = dict(defaults)
    # 1) the config file: the first argument that is not an option
    if argv and not argv[0].startswith("--"):
        path = argv.pop(0)
        if not os.path.isfile(path):
            die(f"config file '{path}' not found", 2)
        scope = _Assignments(config)
        try:
            with open(path) as f:
                code = compile(f.read(), path, "exec")
            exec(code, scope)
        except Exception as e:  # a broken config file is a config error, reported on one line
            die(f"config file '{path}' failed: {type(e).__name__}: {e}", 2)
        # the keys the file set: those it assigned, and any that holds another object than its default (a function
        # of the file that writes a global; the interpreter stores those without going through the scope)
        assigned = scope.assigned | {k for k, v in scope.items() if k not in defaults or v is not defaults[k]}
        for k, v in scope.items():
            if k not in assigned or k.startswith("_") or not isinstance(v, CONFIG_TYPES):
                continue  # modules, functions and private helpers of the config file are not keys
            if k not in defaults:
                unknown(k)
            config[k] = _check(k, v, allowed[k])
            if given is not None:
                given.add(k)
    # 2) overrides: --key=value or --key value
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            die(f"unexpected argument '{arg}' (a config file must come first; options look like --key=value)", 2)
        if "=" in arg:
            key, text = arg[2:].split("=", 1)
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            key, text = arg[2:], argv[i + 1]
            i += 1
        else:
            die(f"option '{arg}' has no value (use --key=value)", 2)
        i += 1
        if key not in defaults:
            unknown(key)
        config[key] = _check(key, _parse_value(text), allowed[key])
        if given is not None:
            given.add(key)
    namespace.update(config)
    return config
