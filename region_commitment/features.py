"""One forward pass over a set of images, every candidate layer captured at once, streamed to disk per layer.

The activations model is anything with Brain-Score's activations-wrapper interface (``PytorchWrapper``, ...): its
extractor's ``preprocess`` (paths -> batch) and ``get_activations(batch, layer_names)`` (-> {layer: array}). Each
layer's flattened activations are appended to their own raw float32 file with plain writes (not through a memory map,
whose written pages would stay resident), in a background thread while the next batch runs, so memory holds two
batches of all layers, never all images of all layers; later steps map one layer at a time.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from brainscore_plugins import atomic

BATCH_BYTES = 1 << 29  # captured activations of one batch stay under ~512 MiB (two batches live at once)
MAX_BATCH = 16  # the forward pass's own intermediate activations dominate memory (~50 MB/image)


def available_layers(activations_model) -> list[str] | None:
    model = getattr(activations_model, "_model", None)
    return [name for name, _ in model.named_modules() if name] if model is not None else None


def check_layers(activations_model, layers: list[str]) -> None:
    if not layers:
        raise ValueError("The list of candidate layers is empty; pass layers=[...] or use the default rule")
    available = available_layers(activations_model)
    if available is None:
        return
    missing = [layer for layer in layers if layer not in set(available)]
    if missing:
        raise ValueError(f"The model has no layer(s) {missing}. Its layers are: {', '.join(available)}")


def _file(directory: Path, layer: str) -> Path:
    return directory / f"{layer}.f32"


class FeatureStore:
    """Per-layer ``(n_images, n_features)`` float32 memmaps in ``directory``, complete when ``done.json`` exists."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        meta = json.loads((self.directory / "done.json").read_text())
        self.paths, self.shapes = meta["paths"], {k: tuple(v) for k, v in meta["shapes"].items()}
        self.row = {path: i for i, path in enumerate(self.paths)}

    def layer(self, layer: str) -> np.memmap:
        return np.memmap(_file(self.directory, layer), dtype=np.float32, mode="r", shape=self.shapes[layer])

    def rows(self, paths) -> np.ndarray:
        return np.array([self.row[str(p)] for p in paths])


def _write(files: dict, batch: dict) -> None:
    for layer, values in batch.items():
        files[layer].write(memoryview(values).cast("B"))


def extract(activations_model, layers: list[str], paths: list, directory: str | Path,
            batch_size: int | None = None, progress: bool = True) -> FeatureStore:
    """Run ``paths`` through the model once, capturing ``layers``; reuses a complete store in ``directory``."""
    directory = Path(directory)
    paths = [str(p) for p in paths]
    done = directory / "done.json"
    if done.exists():
        store = FeatureStore(directory)
        if store.paths == paths and set(store.shapes) >= set(layers):
            return store
    check_layers(activations_model, layers)
    directory.mkdir(parents=True, exist_ok=True)
    preprocess = activations_model._extractor.preprocess
    files, shapes = {}, {}  # layer -> open file, (n_images, n_features)
    start, bar = 0, tqdm(total=len(paths), desc="activations (all layers, one pass)", disable=not progress)
    writer, pending = ThreadPoolExecutor(max_workers=1), None  # the disk writes of one batch overlap the next batch
    try:
        while start < len(paths):
            size = batch_size or (8 if not shapes else
                                  min(MAX_BATCH, max(1, BATCH_BYTES // (4 * sum(s[1] for s in shapes.values())))))
            batch_paths = paths[start:start + size]
            outputs = activations_model.get_activations(preprocess(batch_paths), layers)
            batch = {}
            for layer in layers:
                values = np.ascontiguousarray(outputs[layer], dtype=np.float32).reshape(len(batch_paths), -1)
                if not np.isfinite(values).all():
                    raise FloatingPointError(f"Layer {layer} gave NaN or infinite activations for "
                                             f"{batch_paths[0]} ...; check the weights and the input preprocessing")
                if layer not in files:
                    shapes[layer] = (len(paths), values.shape[1])
                    files[layer] = open(_file(directory, layer), "wb")
                batch[layer] = values
            del outputs
            if pending is not None:
                pending.result()  # at most one batch waits to be written: memory stays at two batches
            pending = writer.submit(_write, files, batch)
            start += len(batch_paths)
            bar.update(len(batch_paths))
        if pending is not None:
            pending.result()
    finally:
        writer.shutdown(wait=True)
        bar.close()
        for file in files.values():
            file.close()
    atomic.write_text(done, json.dumps({"paths": paths, "shapes": shapes}))
    return FeatureStore(directory)
