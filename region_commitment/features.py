"""One forward pass over a set of images, every candidate layer captured at once, streamed to disk per layer.

The activations model is anything with Brain-Score's activations-wrapper interface (``PytorchWrapper``, ...): its
extractor's ``preprocess`` (paths -> batch) and ``get_activations(batch, layer_names)`` (-> {layer: array}). One that
also has ``preprocessed(paths)`` (every image preprocessed, in order, e.g. memory-mapped from a cache shared by the
models of a sweep; ``None`` when it has none) is fed from that array instead of a ``preprocess`` call per batch. Each
layer goes to its own raw float32 file in column blocks: block ``k`` holds columns ``[k W, (k + 1) W)`` of every
image, row after row, so that the later steps, which work through a layer a column block at a time, read each block
as one contiguous mapping. Each batch's rows are written into every block (plain positioned writes, in a background
thread while the next batch runs), so memory holds two batches of all layers, never all images of all layers.
A failed extraction removes the files it wrote; a full disk is a :class:`~region_commitment.errors.DiskFullError`.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import atomic, brainscore_internals, settings
from .errors import CommitmentError, DiskFullError

BATCH_BYTES = 1 << 29  # captured activations of one batch stay under ~512 MiB (two batches live at once)
MAX_BATCH = 16  # the forward pass's own intermediate activations dominate memory (~50 MB/image)
BLOCK_BYTES = 1 << 28  # one column block of a layer (all images) is read at once


def available_layers(activations_model) -> list[str] | None:
    model = brainscore_internals.torch_module(activations_model)
    return [name for name, _ in model.named_modules() if name] if model is not None else None


def check_layers(activations_model, layers: list[str]) -> None:
    """Check the candidate ``layers`` against the model's modules (where it has a torch module).

    Raises:
        CommitmentError: ``layers`` is empty, names a layer twice or names layers the model lacks.
    """
    if not layers:
        raise CommitmentError("The list of candidate layers is empty; pass layers=[...] or use the default rule")
    repeated = [layer for layer, count in Counter(layers).items() if count > 1]
    if repeated:
        raise CommitmentError(f"Candidate layer(s) {repeated} are listed more than once; list each layer once")
    available = available_layers(activations_model)
    if available is None:
        return
    missing = [layer for layer in layers if layer not in set(available)]
    if missing:
        raise CommitmentError(f"The model has no layer(s) {missing}. Its layers are: {', '.join(available)}")


def probe_widths(activations_model, layers: list[str], path: str) -> dict[str, int | None]:
    """Features per image of each layer, from one image through the network with plain forward hooks: ``None`` where
    a module's output is not a tensor; layers the forward pass never calls are absent."""
    import torch

    model = brainscore_internals.torch_module(activations_model)
    modules = dict(model.named_modules())
    widths = {}

    def hook(name):
        return lambda module, inputs, output: widths.__setitem__(
            name, output[0].numel() if isinstance(output, torch.Tensor) else None)

    handles = [modules[layer].register_forward_hook(hook(layer)) for layer in layers]
    training = model.training
    try:
        device = next(model.parameters()).device
        model.eval()  # as the wrapper runs it: a forward in training mode would update BatchNorm statistics
        with torch.no_grad():
            model(torch.from_numpy(np.asarray(brainscore_internals.preprocess(activations_model)([path]))).to(device))
    finally:
        model.train(training)
        for handle in handles:
            handle.remove()
    return widths


def free_bytes(path: Path) -> int:
    """Free bytes on the disk that holds ``path`` (or would, once created)."""
    path = Path(path)
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def plan_groups(widths: dict[str, int], n_images: int, budget_bytes: int) -> list[list[str]]:
    """Consecutive layers in groups whose features (``n_images`` rows of float32) fit ``budget_bytes`` of disk; one
    forward pass per group."""
    groups, size = [[]], 0
    for layer, width in widths.items():
        need = 4 * n_images * width
        if need > budget_bytes:
            raise OSError(f"Layer {layer} needs {need / 2**30:.1f} GiB of feature files for {n_images} images, more "
                          f"than the {budget_bytes / 2**30:.1f} GiB of disk available to the cache; free disk space, "
                          f"point cache_dir at a larger disk, or use fewer reference images (n_components)")
        if groups[-1] and size + need > budget_bytes:
            groups.append([])
            size = 0
        groups[-1].append(layer)
        size += need
    return groups


def _file(directory: Path, layer: str) -> Path:
    return directory / f"{layer}.f32"


class LayerFeatures:
    """One layer's ``(n_images, n_features)`` activations on disk, read a column block at a time."""

    def __init__(self, path: Path, shape: tuple[int, int], block: int):
        self.path, self.shape, self.block = path, shape, block

    def column_blocks(self):
        """Every image x one block of columns, block after block: a read-only mapping of the block's contiguous
        bytes (copy-on-write, so torch may wrap it), unmapped once the caller moves on."""
        n, width = self.shape
        if self.path.stat().st_size < 4 * n * width:
            raise EOFError(f"{self.path} is truncated; delete its folder to extract the features again")
        for start in range(0, width, self.block):
            yield np.memmap(self.path, dtype=np.float32, mode="c", offset=4 * n * start,
                            shape=(n, min(self.block, width - start)))

    def __array__(self, dtype=None, copy=None):
        return np.concatenate(list(self.column_blocks()), axis=1).astype(dtype or np.float32)


class FeatureStore:
    """Per-layer :class:`LayerFeatures` in ``directory``, complete when ``done.json`` exists."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta = json.loads((self.directory / "done.json").read_text())
        self.paths, self.shapes = meta["paths"], {k: tuple(v) for k, v in meta["shapes"].items()}
        self.blocks = meta["blocks"]
        self.row = {path: i for i, path in enumerate(self.paths)}

    def layer(self, layer: str) -> LayerFeatures:
        return LayerFeatures(_file(self.directory, layer), self.shapes[layer], self.blocks[layer])

    def rows(self, paths) -> np.ndarray:
        return np.array([self.row[str(p)] for p in paths])


def batch_size_for(features_per_image: int) -> int:
    """Images per batch so that one batch's captured activations stay under ``BATCH_BYTES``."""
    return min(MAX_BATCH, max(1, BATCH_BYTES // (4 * features_per_image)))


def _block_width(n_images: int, n_features: int) -> int:
    return max(1, min(n_features, BLOCK_BYTES // (4 * n_images)))


def _write(files: dict, blocks: dict, shapes: dict, batch: dict, first_row: int) -> None:
    """Write rows ``first_row ...`` of every layer into each of its column blocks (``os.pwrite`` releases the GIL)."""
    for layer, values in batch.items():
        n, width = shapes[layer]
        for start in range(0, width, blocks[layer]):
            piece = np.ascontiguousarray(values[:, start:start + blocks[layer]])
            os.pwrite(files[layer], piece, 4 * (n * start + first_row * piece.shape[1]))


def _stream(activations_model, layers: list[str], paths: list[str], directory: Path, batch_size: int | None,
            progress: bool, shapes: dict, reduce: dict) -> dict:
    """The forward pass of :func:`extract`, its rows written into ``directory``; fills ``shapes`` (layer ->
    (n_images, n_features)) as the layers are first seen and returns the block widths."""
    preprocess = brainscore_internals.preprocess(activations_model)
    pixels = getattr(activations_model, "preprocessed", lambda paths: None)(paths)
    files, blocks = {}, {}  # layer -> file descriptor, block width
    start, bar = 0, tqdm(total=len(paths), desc="activations (all layers, one pass)", disable=not progress)
    writer, pending = ThreadPoolExecutor(max_workers=1), None  # the disk writes of one batch overlap the next batch
    try:
        while start < len(paths):
            size = batch_size or (8 if not shapes else batch_size_for(sum(s[1] for s in shapes.values())))
            batch_paths = paths[start:start + size]
            inputs = preprocess(batch_paths) if pixels is None else np.array(pixels[start:start + len(batch_paths)])
            outputs = activations_model.get_activations(inputs, layers)
            batch = {}
            for layer in layers:
                values = np.ascontiguousarray(outputs[layer], dtype=np.float32).reshape(len(batch_paths), -1)
                if layer in reduce:
                    values = np.ascontiguousarray(reduce[layer](values), dtype=np.float32)
                if not np.isfinite(values).all():
                    raise FloatingPointError(f"Layer {layer} gave NaN or infinite activations for "
                                             f"{batch_paths[0]} ...; check the weights and the input preprocessing")
                if layer not in files:
                    shapes[layer] = (len(paths), values.shape[1])
                    blocks[layer] = _block_width(*shapes[layer])
                    files[layer] = os.open(_file(directory, layer), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                batch[layer] = values
            del outputs
            if pending is not None:
                pending.result()  # at most one batch waits to be written: memory stays at two batches
            pending = writer.submit(_write, files, blocks, shapes, batch, start)
            start += len(batch_paths)
            bar.update(len(batch_paths))
        if pending is not None:
            pending.result()
    finally:
        writer.shutdown(wait=True)
        bar.close()
        for file in files.values():
            os.close(file)
    return blocks


def extract(activations_model, layers: list[str], paths: list, directory: str | Path,
            batch_size: int | None = None, progress: bool = True, reduce: dict | None = None) -> FeatureStore:
    """Run ``paths`` through the model once, capturing ``layers``; reuses a complete store in ``directory``.
    ``reduce``: layer -> a function of a batch's rows ``(n, features)`` returning the rows to store instead (e.g. a
    spatial pooling), applied before anything is written.

    Raises:
        CommitmentError: bad ``layers`` (:func:`check_layers`).
        DiskFullError: the disk filled up; the files written are removed.
        FloatingPointError: NaN or infinite activations.
    """
    directory = Path(directory)
    paths = [str(p) for p in paths]
    done = directory / "done.json"
    if done.exists():
        meta = json.loads(done.read_text())
        if meta["paths"] == paths and set(meta.get("blocks", ())) >= set(layers) \
                and sorted(meta.get("reduced", ())) == sorted(reduce or ()):
            return FeatureStore(directory)
        done.unlink()  # another image set, other layers, or an older layout: extract again
    check_layers(activations_model, layers)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    shapes = {}
    try:
        blocks = _stream(activations_model, layers, paths, directory, batch_size, progress, shapes, reduce or {})
        atomic.write_text(done, json.dumps({"paths": paths, "shapes": shapes, "blocks": blocks,
                                            "reduced": sorted(reduce or ())}))
    except BaseException as error:
        for layer in layers:
            _file(directory, layer).unlink(missing_ok=True)
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            need = sum(4 * n * width for n, width in shapes.values()) / 1e9
            raise DiskFullError(errno.ENOSPC, f"Disk full at {directory}: the features of {len(layers)} layer(s) "
                                f"for {len(paths)} images need {'~' if len(shapes) == len(layers) else 'over '}"
                                f"{need:.2f} GB and {free_bytes(directory) / 1e9:.2f} GB are free (the feature "
                                f"files written are removed). Free disk space or point the cache (cache_dir, "
                                f"${settings.CACHE_ENV}) at a larger disk") from error
        raise
    return FeatureStore(directory)
