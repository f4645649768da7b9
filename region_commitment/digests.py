"""Content digests that key ``commit``'s cache and go into its provenance: a model's weights and image files.

Images are digested as the bytes of their files (not the decoded pixels, which would cost a decode of every image on
every run): a file rewritten in place gets a new digest, while an unchanged file re-encoded elsewhere is a new cache
entry, which is only slower. What the model makes of the bytes (its preprocessing) is named by the activations
model's identifier.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from itertools import chain

from . import brainscore_internals

CHUNK_BYTES = 1 << 26  # a large tensor is copied to the host and hashed 64 MiB at a time
READERS = 8  # files hashed at once (hashlib releases the GIL on large buffers)


def weights(activations_model) -> str | None:
    """sha256 of the torch module's parameters and buffers (name, dtype, shape and bytes of each, one chunk at a
    time); ``None`` for an activations model without a torch module."""
    import torch

    model = brainscore_internals.torch_module(activations_model)
    if model is None:
        return None
    hasher = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in chain(model.named_parameters(), model.named_buffers()):
            hasher.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
            flat = tensor.detach().reshape(-1)
            step = max(1, CHUNK_BYTES // max(1, flat.element_size()))
            for start in range(0, flat.numel(), step):
                hasher.update(flat[start:start + step].contiguous().cpu().view(torch.uint8).numpy())
    return hasher.hexdigest()


def _file(path) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def files(paths) -> str:
    """sha256 over the sha256 of each file's bytes, in order."""
    hasher = hashlib.sha256()
    with ThreadPoolExecutor(READERS) as pool:
        for digest in pool.map(_file, paths):
            hasher.update(digest)
    return hasher.hexdigest()
