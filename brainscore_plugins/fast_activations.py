"""Brain-Score's ``PytorchWrapper`` with image decoding and preprocessing in worker processes, ahead of the network.

:class:`FastPytorchWrapper` is a drop-in: same interface, identifier and activation caching (Brain-Score's own
extractor runs every step: caching, batching and padding, hooks, packaging); only the ``preprocess`` calls of a run
are computed in advance, in a ``torch.utils.data.DataLoader`` with worker processes, on exactly the batches (padding
included) the extractor will ask for, and each forward pass runs under ``torch.inference_mode``. The preprocessed
images are kept in the pixel cache (:mod:`.pixel_cache`): every later run on the same files with the same
preprocessing (another checkpoint, another process of the sweep) reads them instead of decoding again. Activations are
those of ``PytorchWrapper`` (the same preprocessing function on the same paths; a test checks equality). Microsaccade
runs (more than one trial per image) use the extractor's own path unchanged.
"""
from __future__ import annotations

import itertools
import os
from collections import OrderedDict

import numpy as np
import torch
from brainscore_vision.model_helpers.activations.core import ActivationsExtractorHelper
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

from .pixel_cache import PixelCache


def _identity(item):
    return item


class _Batches(torch.utils.data.Dataset):
    """The extractor's padded batches of ``paths``, each preprocessed by ``preprocess`` (in a worker)."""

    def __init__(self, paths, batch_size: int, preprocess):
        self.paths, self.batch_size, self.preprocess = list(paths), batch_size, preprocess

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def batch(self, index: int) -> list:
        paths = self.paths[index * self.batch_size:(index + 1) * self.batch_size]
        return paths + paths[-1:] * (self.batch_size - len(paths))  # the extractor's _pad: repeat the last image

    def __getitem__(self, index: int):
        paths = self.batch(index)
        return paths, np.asarray(self.preprocess(paths))


class _PrefetchingExtractor(ActivationsExtractorHelper):
    """Brain-Score's extractor whose ``preprocess`` calls are answered from the pixel cache (:mod:`.pixel_cache`) when
    it holds the run's images, else from a worker pipeline started per run, whose batches also fill the cache."""

    workers = min(4, os.cpu_count() or 1)

    def _get_activations_batched(self, paths, layers, batch_size: int, require_variance: bool):
        if self._microsaccade_helper.number_of_trials != 1:
            return super()._get_activations_batched(paths, layers, batch_size, require_variance)
        cache = PixelCache()
        key = cache.key([str(p) for p in paths], self.preprocess) if cache.enabled else None
        cached = cache.get(key) if key else None
        if cached is not None and len(cached) == len(paths):
            return self._answered(_from_pixels(cached, batch_size), paths, layers, batch_size, require_variance)
        entry = cache.entry(key, len(paths)) if key else None
        pipelined = len(paths) > batch_size and self.workers > 0
        if not pipelined and entry is None:
            return super()._get_activations_batched(paths, layers, batch_size, require_variance)
        batches = self._pipeline(paths, batch_size) if pipelined else None
        preprocess, numbers = self.preprocess, itertools.count()

        def next_batch(inputs):
            index = next(numbers)
            if batches is None:
                batch = np.asarray(preprocess(inputs))
            else:
                expected, batch = next(batches)
                if [str(p) for p in inputs] != [str(p) for p in expected]:  # never: the extractor asks in order
                    raise RuntimeError("the extractor asked for another batch than the prefetched one")
            if entry is not None:
                entry.write(index * batch_size, batch)
            return batch

        try:
            activations = self._answered(next_batch, paths, layers, batch_size, require_variance)
        except BaseException:
            if entry is not None:
                entry.discard()
            raise
        if entry is not None:
            entry.commit()
        return activations

    def _pipeline(self, paths, batch_size: int):
        """(padded batch paths, preprocessed batch) in the extractor's order, from worker processes."""
        return iter(torch.utils.data.DataLoader(_Batches(paths, batch_size, self.preprocess), batch_size=None,
                                                num_workers=self.workers, collate_fn=_identity, prefetch_factor=2))

    def _answered(self, answer, paths, layers, batch_size: int, require_variance: bool):
        """Brain-Score's own batched extraction, its ``preprocess`` calls answered by ``answer``."""
        preprocess = self.preprocess
        self.preprocess = answer
        try:
            return super()._get_activations_batched(paths, layers, batch_size, require_variance)
        finally:
            self.preprocess = preprocess  # drops a pipeline: its workers stop


def _from_pixels(pixels: np.ndarray, batch_size: int):
    """A ``preprocess`` that answers the extractor's padded batches, in order, from cached pixels."""
    starts = iter(range(0, len(pixels), batch_size))

    def next_batch(inputs):
        start = next(starts)
        rows = list(range(start, min(start + batch_size, len(pixels))))
        return np.asarray(pixels[rows + rows[-1:] * (len(inputs) - len(rows))])
    return next_batch


class FastPytorchWrapper(PytorchWrapper):
    """``PytorchWrapper`` with prefetched preprocessing (worker processes), the pixel cache and
    ``torch.inference_mode``.

    ``channels_last=True`` (``$BRAINSCORE_PLUGINS_EXTRACTOR=fast-channels-last``) also runs the network on
    channels-last batches: the layout a raw forward pass gets from the preprocessing's transposed arrays, about 1.4x
    faster on CPUs for convolutional networks, but another summation order, so activations equal
    ``PytorchWrapper``'s only to float32 rounding (a test bounds the difference), not exactly.

    On a CUDA device, each batch is stacked in pinned host memory (``pin_memory=True``, the default) and copied with
    ``non_blocking``, so the copy overlaps the host's work; Brain-Score's hooks copy each layer's output back as it is
    produced. On the CPU, without channels-last, the extraction is ``PytorchWrapper``'s own.
    """

    def __init__(self, *args, channels_last: bool = False, pin_memory: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels_last, self.pin_memory = channels_last, pin_memory

    def _build_extractor(self, identifier, preprocessing, get_activations, *args, **kwargs):
        return _PrefetchingExtractor(identifier=identifier, get_activations=get_activations,
                                     preprocessing=preprocessing, *args, **kwargs)

    def get_activations(self, images, layer_names):
        with torch.inference_mode():
            if not self.channels_last and self._device.type != "cuda":
                return super().get_activations(images, layer_names)
            batch = self._device_batch(self._host_batch(images))
            self._model.eval()
            outputs = OrderedDict()
            hooks = [self.register_hook(self.get_layer(name), name, target_dict=outputs) for name in layer_names]
            try:
                self._model(batch, **self._forward_kwargs)
            finally:
                for hook in hooks:
                    hook.remove()
            return outputs

    def _host_batch(self, images) -> torch.Tensor:
        """The batch on the host: stacked, in pinned memory when it goes to a CUDA device (``pin_memory``)."""
        batch = torch.stack([torch.as_tensor(image) for image in images])
        return batch.pin_memory() if self.pin_memory and self._device.type == "cuda" else batch

    def _device_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """The batch on the network's device, in its dtype and memory format (a non-blocking copy from pinned
        memory)."""
        model_dtype = next(self._model.parameters()).dtype
        return batch.to(self._device, dtype=model_dtype, non_blocking=batch.is_pinned(),
                        memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
