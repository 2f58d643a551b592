"""
A train.py run out as a Hugging Face folder, for any tool that reads one (transformers, lm-eval's hf model, vLLM,
the hub).

    python export.py --ckpt=out/                             # writes out/hf/
    python export.py --ckpt=out/ckpt_000500.pt               # a step snapshot: writes out/hf_000500/
    python export.py --ckpt=out/ --dtype=bfloat16 --out_dir=exports/disp_s1 --overwrite=True
    python export.py --ckpt=out/ --push_to_hub=me/gpt2-dispersion   # then uploads it (network and `hf auth login`)

    lm_eval --model hf --model_args pretrained=out/hf,dtype=float32 --tasks piqa    # then, e.g.

The folder is transformers' save_pretrained of hf_io.to_hf(model) (GPT2LMHeadModel or Qwen3ForCausalLM, same
weights): config.json, model.safetensors (a tied lm_head is stored once), generation_config.json whose bos, eos and
pad ids are the end-of-text id of the run's data (the checkpoint's data_meta), export.json (the checkpoint, step,
dtype, data_meta and training config it came from), and the tokenizer of that data:
- a hub id or a tokenizer folder: AutoTokenizer's, saved as it loads (with pad = eos where it has no pad token).
- 'gpt2': the hub's 'gpt2' tokenizer (GPT2TokenizerFast), the same ids as the tiktoken encoding the data was made
  with. It needs the hub once: offline, the weights are exported anyway and one WARNING line says how to add it.
- 'byte' (no download): data.hf_tokenizer('byte'), a `tokenizers` byte-level BPE without merges. Every UTF-8 byte
  is one token whose id is the byte's value (0-255), '<|endoftext|>' is id 256 and is bos, eos and pad; encoding
  adds nothing (no BOS); decoding rebuilds the UTF-8 text (a broken sequence becomes U+FFFD) and writes 256 as
  '<|endoftext|>' unless skip_special_tokens=True. It is the tokenizer eval.py hands lm-eval, so lm-eval scores the
  folder exactly as eval.py scores the checkpoint.
A tokenizer is written only if its size and end-of-text id are the data's (transformers 5.24's
GPT2TokenizerFast.from_pretrained('gpt2') offline returns a one-token tokenizer instead of failing).

Nothing half-done looks finished: the folder is written as a hidden sibling (.hf.tmp-<pid>), flushed to disk, then
renamed to out_dir; an export killed outright leaves at most that hidden folder (an exception removes it). An
out_dir that exists and is not empty is refused unless overwrite=True, which replaces only an earlier export (a folder
with config.json) and never a folder holding the checkpoint. A missing, damaged or foreign checkpoint is refused
(exit 2, nothing written); it is read with torch.load(weights_only=True) unless trust_checkpoint=True.

push_to_hub=<repo id> uploads the written folder with huggingface_hub (create_repo, then upload_folder; private
unless hub_private=False). The tests run offline: the upload itself is not exercised by them.
"""

import json
import os
import shutil

import torch

from atomic import check_output
from checkpoint import is_sharded
from configurator import Choice, config_keys, configure, die, one_line
from hf_io import to_hf
from parallel import load_checkpoint  # ckpt.pt files and FSDP runs' sharded folders

# -----------------------------------------------------------------------------
# defaults (--key=value; the annotations say what each allows: configurator.py)
ckpt = 'out'              # a train.py out_dir (its ckpt.pt), a ckpt.pt / ckpt_XXXXXX.pt file, or a ckpt_sharded folder
out_dir = ''              # '' = hf/ beside the checkpoint (hf_XXXXXX/ for a step snapshot)
dtype: Choice('float32', 'bfloat16', 'float16') = 'float32'  # the stored weights (training keeps float32 masters)
overwrite = False         # replace an earlier export at out_dir
push_to_hub = ''          # a hub repo id (user/name) to upload the folder to; '' = local only
hub_private = True        # a repository push_to_hub creates is private: a result is published on purpose
trust_checkpoint = False  # load --ckpt with full pickle, which can run code: only a file you made yourself
# -----------------------------------------------------------------------------
CONFIG_KEYS = config_keys(globals())  # configured in main(): the tests import this file without its command line


def default_out_dir(path):
    """hf/ in the run's folder; hf_XXXXXX/ for a step snapshot ckpt_XXXXXX.pt, so snapshots never collide."""
    path = os.path.normpath(path)
    if os.path.isdir(path) and not is_sharded(path):
        return os.path.join(path, 'hf')
    name = os.path.splitext(os.path.basename(path))[0]
    step = name[len('ckpt_'):] if name.startswith('ckpt_') and name[len('ckpt_'):].isdigit() else ''
    return os.path.join(os.path.dirname(path), f"hf_{step}" if step else 'hf')


def check_out_dir(path, overwrite, ckpt_path):
    """A one-line ValueError unless out_dir may be written: absent (in a folder that can be written), empty, or an
    earlier export with overwrite."""
    check_output(path, 'out_dir', folder=True)
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        raise ValueError(f"--out_dir {path} is a link: give the folder it points to")
    if not os.listdir(path):
        return
    if not overwrite:
        raise ValueError(f"--out_dir {path} exists and is not empty: choose another, or replace it with "
                         f"--overwrite=True")
    inside = os.path.realpath(ckpt_path)
    if os.path.commonpath([inside, os.path.realpath(path)]) == os.path.realpath(path):
        raise ValueError(f"--out_dir {path} holds the checkpoint {ckpt_path}: --overwrite would delete it")
    if not os.path.isfile(os.path.join(path, 'config.json')):  # --overwrite replaces an export, not any folder
        raise ValueError(f"--out_dir {path} is not an earlier export (no config.json): --overwrite replaces only "
                         f"those; choose another --out_dir")


def end_of_text(meta, vocab_size):
    """data_meta's end-of-text id, checked (a checkpoint is data): None when the checkpoint has no data_meta."""
    if not meta:
        return None
    eot = meta.get('eot_token')
    if type(eot) is not int or not 0 <= eot < vocab_size:
        raise ValueError(f"the checkpoint's data_meta has eot_token {eot!r}, not an id of its {vocab_size}-token "
                         f"vocabulary")
    return eot


def load_tokenizer(meta, vocab_size):
    """(HF tokenizer or None, why not): data.hf_tokenizer of the run's tokenizer, if it loads and matches the data's
    vocabulary size and end-of-text id."""
    from data import hf_tokenizer
    name = meta.get('tokenizer') if meta else None
    if not isinstance(name, str) or not name:
        return None, "the checkpoint has no data_meta['tokenizer']"
    try:
        tok = hf_tokenizer(name)  # 'byte' is built here; 'gpt2', a hub id or a folder through AutoTokenizer
    except ValueError as e:
        return None, str(e)
    size, eos, want = len(tok), tok.eos_token_id, meta.get('vocab_size')
    if size != want or eos != meta['eot_token'] or size > vocab_size:
        return None, (f"it loaded with {size} tokens and end-of-text {eos}, but the data has {want} tokens and "
                      f"end-of-text {meta['eot_token']} (the model {vocab_size})")
    return tok, ''


def write_folder(path, save):
    """Call save(folder) on a hidden sibling of path, flush its files to disk, then rename it to path (replacing
    what is there: the caller checked it may). Interrupted at any point, path holds its old content or the new
    complete folder, never a part; the hidden folder is removed unless the process is killed outright."""
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    tmp, old = (os.path.join(parent, f".{name}.{what}-{os.getpid()}") for what in ('tmp', 'old'))
    os.makedirs(parent, exist_ok=True)
    moved = False
    try:
        os.makedirs(tmp)
        save(tmp)
        umask = os.umask(0)
        os.umask(umask)
        for file in os.listdir(tmp):
            # transformers writes model.safetensors readable by its owner only: give it the umask's mode, as the rest
            os.chmod(os.path.join(tmp, file), 0o666 & ~umask)
            with open(os.path.join(tmp, file), 'rb') as f:  # on disk before the rename: no empty files after a crash
                os.fsync(f.fileno())
        if os.path.lexists(path):
            os.rename(path, old)
            moved = True
        os.rename(tmp, path)
        moved = False
        fd = os.open(parent, os.O_RDONLY)  # the renames themselves
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        if moved:  # the new folder did not take its place: put the old one back
            os.rename(old, path)
        raise
    finally:
        for leftover in (tmp, old):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover)


def main(argv=None):
    config = configure(globals(), argv=argv, keys=CONFIG_KEYS)
    if push_to_hub:
        from huggingface_hub.utils import validate_repo_id
        try:
            validate_repo_id(push_to_hub)
        except Exception as e:
            die(f"--push_to_hub {push_to_hub!r} is not a hub repo id (user/name): {one_line(e)}", 2)
    if not ckpt or not os.path.exists(ckpt):
        die(f"no checkpoint at {ckpt!r}: pass --ckpt=<train.py out_dir or a .pt file>", 2)
    folder = out_dir or default_out_dir(ckpt)
    try:  # out_dir first: a refusal costs no checkpoint read
        check_out_dir(folder, overwrite, ckpt)
        model, checkpoint = load_checkpoint(ckpt, trust_checkpoint=trust_checkpoint)
        meta = checkpoint.get('data_meta')
        vocab_size = model.get_input_embeddings().weight.size(0)
        eot = end_of_text(meta, vocab_size)
    except (FileNotFoundError, ValueError) as e:
        die(str(e), 2)

    from transformers import GenerationConfig
    hf_model = to_hf(model)
    del model  # to_hf copied the weights
    if eot is not None:  # what generate() stops at, and what lm-eval conditions an empty context on
        hf_model.config.bos_token_id = hf_model.config.eos_token_id = eot
        hf_model.generation_config = GenerationConfig(bos_token_id=eot, eos_token_id=eot, pad_token_id=eot)
    hf_model = hf_model.to(getattr(torch, dtype))
    tok, why_not = load_tokenizer(meta, vocab_size)

    def save(tmp):
        hf_model.save_pretrained(tmp)  # safetensors (transformers 5 writes nothing else)
        if tok is not None:
            tok.save_pretrained(tmp)
        with open(os.path.join(tmp, 'export.json'), 'w') as f:  # where the folder came from
            json.dump({'ckpt': os.path.abspath(ckpt), 'step': checkpoint.get('step'), 'dtype': dtype,
                       'data_meta': meta, 'train_config': checkpoint.get('config')}, f, indent=2, default=str)

    try:
        write_folder(folder, save)
    except OSError as e:  # a full disk, the folder above removed: the checkpoint is untouched, nothing half-written
        die(f"could not write {folder}: {one_line(e)} (nothing was written; the checkpoint is untouched)")
    files = sorted(os.listdir(folder))
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in files if f.endswith('.safetensors'))
    print(f"wrote {folder}: {type(hf_model).__name__} from {ckpt} (step {checkpoint.get('step', '?')}), {dtype}, "
          f"{size / 1e6:.1f} MB of safetensors")
    if tok is not None:
        print(f"tokenizer: '{meta['tokenizer']}' ({len(tok)} tokens, end-of-text {eot})")
    else:
        name = meta.get('tokenizer') if meta else None
        add = (f"; with the hub reachable, add it with: python -c \"from transformers import AutoTokenizer; "
               f"AutoTokenizer.from_pretrained('{name}').save_pretrained('{folder}')\"" if name else '')
        print(f"WARNING: tokenizer not written ({why_not}){add}")
    print(f"files: {', '.join(files)}")

    if push_to_hub:
        from huggingface_hub import create_repo, upload_folder
        try:
            create_repo(push_to_hub, private=hub_private, exist_ok=True)
            info = upload_folder(repo_id=push_to_hub, folder_path=folder,
                                 commit_message=f"export.py --ckpt={ckpt} (step {checkpoint.get('step', '?')})")
        except Exception as e:  # offline, no token, no rights: the local folder stands
            die(f"could not push {folder} to the hub as {push_to_hub}: {one_line(e)}")
        print(f"pushed to {getattr(info, 'commit_url', push_to_hub)}")
    return config


if __name__ == '__main__':
    main()
