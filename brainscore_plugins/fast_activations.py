"""Brain-Score's ``PytorchWrapper`` with image decoding and preprocessing ahead of the network, computed once.

:class:`FastPytorchWrapper` is a drop-in: same interface, identifier and activation caching (Brain-Score's own
extractor runs every step: caching, batching and padding, hooks, packaging); only the ``preprocess`` calls of a run
are answered differently, and each forward pass runs under ``torch.inference_mode``. The preprocessed images live in
the pixel cache (:mod:`.pixel_cache`): a run on images it holds reads them, memory-mapped; otherwise a background
thread computes them into it (with ``DataLoader`` worker processes when a GPU runs the network; by itself on the CPU,
where the network already keeps every core busy) while the network consumes the batches ready, and every later run
on the same files with the same preprocessing (another checkpoint, another process of the sweep) reads them. With the
cache off, a worker pipeline computes each run's batches ahead of the network. Activations are those of
``PytorchWrapper`` (the same preprocessing function on the same paths; tests check equality). Microsaccade runs (more
than one trial per image) use the extractor's own path unchanged.
"""
from __future__ import annotations

import contextlib
import errno
import threading
import warnings
from collections import OrderedDict

import numpy as np
import torch
from brainscore_vision.model_helpers.activations.core import ActivationsExtractorHelper
from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper

from . import settings
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
    """Brain-Score's extractor whose ``preprocess`` calls are answered from the pixel cache (:mod:`.pixel_cache`):
    memory-mapped when it holds the run's images, else as a background thread computes them into it
    (:class:`_Filling`); without the cache, from a worker pipeline started per run."""

    workers = None  # worker processes that decode images: None, as many as the cores this process may use, up to 4
    decode_in_workers = False  # fill the cache from worker processes (a GPU runs the network) or from one thread

    def _get_activations_batched(self, paths, layers, batch_size: int, require_variance: bool):
        if self._microsaccade_helper.number_of_trials != 1:
            return super()._get_activations_batched(paths, layers, batch_size, require_variance)
        pixels = self.preprocessed([str(p) for p in paths], batch_size)
        if pixels is not None:
            activations = self._answered(_from_pixels(pixels, batch_size), paths, layers, batch_size, require_variance)
            if isinstance(pixels, _Filling):
                pixels.join()  # committed before the run returns: the next model reads it
            return activations
        if len(paths) <= batch_size or self._workers() == 0:
            return super()._get_activations_batched(paths, layers, batch_size, require_variance)
        batches = self._pipeline(paths, batch_size)

        def next_batch(inputs):
            expected, batch = next(batches)
            if [str(p) for p in inputs] != [str(p) for p in expected]:  # never: the extractor asks in order
                raise RuntimeError("the extractor asked for another batch than the prefetched one")
            return batch
        return self._answered(next_batch, paths, layers, batch_size, require_variance)

    def preprocessed(self, paths: list[str], batch_size: int = 64):
        """Every image of ``paths`` preprocessed, in order: memory-mapped from the pixel cache; when absent, a
        :class:`_Filling` array that a background thread computes (with ``workers`` processes when
        ``decode_in_workers``, else itself, sharing the cores with the network without copying batches between
        processes) and then commits to the cache, while the caller reads what is ready; ``None`` when the cache is
        off or the preprocessing cannot be cached."""
        cache = PixelCache()
        key = cache.key(paths, self.preprocess) if cache.enabled and paths else None
        if key is None:
            return None
        cached = cache.get(key, len(paths))
        if cached is not None:
            return cached
        preprocess = self.preprocess  # the thread's own: the extractor answers self.preprocess from the array
        stop = None
        if self.decode_in_workers and self._workers() > 0 and len(paths) > batch_size:
            pipeline = self._pipeline(paths, batch_size)
            batches, stop = (batch for _, batch in pipeline), getattr(pipeline, "_shutdown_workers", None)
        else:
            batches = (np.asarray(preprocess(paths[i:i + batch_size])) for i in range(0, len(paths), batch_size))
        entry, first = cache.entry(key, len(paths)), next(batches)
        try:
            entry.write(0, first)  # allocates the whole entry: a full disk shows here, not in the thread
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            warnings.warn(f"The pixel cache is skipped for this run: no room for its {len(paths)} images "
                          f"({len(paths) * first[0].nbytes / 1e9:.2f} GB) in {cache.folder}: free disk space there, "
                          f"or set ${settings.PIXEL_CACHE}=0 to turn the cache off", stacklevel=2)
            return None
        return _Filling(entry, batches, batch_size, stop)

    def _workers(self) -> int:
        return min(4, settings.cores()) if self.workers is None else self.workers

    def _pipeline(self, paths, batch_size: int):
        """(padded batch paths, preprocessed batch) in the extractor's order, from worker processes."""
        return iter(torch.utils.data.DataLoader(_Batches(paths, batch_size, self.preprocess), batch_size=None,
                                                num_workers=self._workers(), collate_fn=_identity, prefetch_factor=2))

    def _answered(self, answer, paths, layers, batch_size: int, require_variance: bool):
        """Brain-Score's own batched extraction, its ``preprocess`` calls answered by ``answer``."""
        preprocess = self.preprocess
        self.preprocess = answer
        try:
            return super()._get_activations_batched(paths, layers, batch_size, require_variance)
        finally:
            self.preprocess = preprocess  # drops a pipeline: its workers stop


class _Filling:
    """A pixel-cache entry being computed by a background thread from ``batches`` (an iterator, in order, of the
    batches after those ``entry`` holds), and committed once complete; reading rows (``filling[start:stop]``, a copy)
    waits until they are written, so the caller's forward pass overlaps the decoding. A failure of the computation is
    raised to the reader; the entry is then discarded, and ``stop`` (if given) called: it ends the worker processes
    that compute ``batches`` (left to the garbage collector in another thread, their shutdown waits 5 s each)."""

    def __init__(self, entry, batches, batch_size: int, stop=None):
        self._entry, self._rows, self._error, self._stop = entry, entry.rows, None, stop
        self._array, self._filled = entry.array, entry.filled
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._fill, args=(batches, batch_size), daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        return self._rows

    def _fill(self, batches, batch_size: int) -> None:
        try:
            for index, batch in enumerate(batches, start=-(-self._entry.filled // batch_size)):
                self._entry.write(index * batch_size, batch)
                with self._ready:
                    self._array, self._filled = self._entry.array, self._entry.filled
                    self._ready.notify_all()
            self._entry.commit()
        except BaseException as error:  # noqa: BLE001 - handed to the reader
            if self._stop is not None:
                self._stop()
            self._entry.discard()
            with self._ready:
                self._error = error
                self._ready.notify_all()

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self._rows)
        with self._ready:
            self._ready.wait_for(lambda: self._filled >= stop or self._error is not None)
            if self._filled < stop:
                raise self._error
            return np.array(self._array[start:stop])

    def join(self) -> None:
        """Wait until the entry is committed (or discarded)."""
        self._thread.join()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Every row, once the entry is committed."""
        self.join()
        return self[:].astype(dtype or self._array.dtype, copy=False)


def _from_pixels(pixels, batch_size: int):
    """A ``preprocess`` that answers the extractor's padded batches, in order, with copies of rows of ``pixels`` (a
    memory-mapped cache entry or a :class:`_Filling`)."""
    starts = iter(range(0, len(pixels), batch_size))

    def next_batch(inputs):
        start = next(starts)
        batch = np.array(pixels[start:min(start + batch_size, len(pixels))])
        padding = len(inputs) - len(batch)  # the extractor's _pad repeats the last image
        return np.concatenate([batch, np.repeat(batch[-1:], padding, axis=0)]) if padding else batch
    return next_batch


class FastPytorchWrapper(PytorchWrapper):
    """``PytorchWrapper`` with prefetched preprocessing (worker processes), the pixel cache and
    ``torch.inference_mode``.

    ``channels_last=True`` (``$BRAINSCORE_PLUGINS_EXTRACTOR=fast-channels-last``) also runs the network on
    channels-last batches: the layout a raw forward pass gets from the preprocessing's transposed arrays, about 1.4x
    faster on CPUs for convolutional networks, but another summation order, so activations equal
    ``PytorchWrapper``'s only to float32 rounding (a test bounds the difference), not exactly.

    ``precision="bfloat16"`` or ``"float16"`` (``$BRAINSCORE_PLUGINS_PRECISION``) runs the forward pass under
    ``torch.autocast`` in that type (mixed precision: the weights stay float32, convolutions and matrix products run
    in the lower precision); each layer's output is returned as float32, so everything downstream is unchanged, but
    the numbers are those of the lower precision.

    On a CUDA device, each batch is stacked in pinned host memory (``pin_memory=True``, the default) and copied with
    ``non_blocking``, so the copy overlaps the host's work; each layer's output is copied back as it is produced. On
    the CPU, in float32 without channels-last, the extraction is ``PytorchWrapper``'s own.
    """

    def __init__(self, *args, channels_last: bool = False, pin_memory: bool = True, precision: str = "float32",
                 **kwargs):
        if precision not in _AUTOCAST:
            raise ValueError(f"precision is {precision!r}; use one of {', '.join(_AUTOCAST)}")
        super().__init__(*args, **kwargs)
        self.channels_last, self.pin_memory, self.precision = channels_last, pin_memory, precision

    def _build_extractor(self, identifier, preprocessing, get_activations, *args, **kwargs):
        extractor = _PrefetchingExtractor(identifier=identifier, get_activations=get_activations,
                                          preprocessing=preprocessing, *args, **kwargs)
        if self._device.type == "cuda":  # on the CPU the network keeps every core busy: one decoding thread
            extractor.decode_in_workers = True
        return extractor

    def preprocessed(self, paths) -> np.ndarray | None:
        """Every image of ``paths`` preprocessed, from the pixel cache (:meth:`_PrefetchingExtractor.preprocessed`):
        how ``region_commitment`` feeds one forward pass over the reference images and stimuli of a commitment."""
        return self._extractor.preprocessed([str(p) for p in paths])

    def get_activations(self, images, layer_names):
        with torch.inference_mode():
            if not self.channels_last and self._device.type != "cuda" and self.precision == "float32":
                return super().get_activations(images, layer_names)
            batch = self._device_batch(self._host_batch(images))
            self._model.eval()
            outputs = OrderedDict()
            hooks = [self._model_hook(self.get_layer(name), name, outputs) for name in layer_names]
            try:
                with self._autocast():
                    self._model(batch, **self._forward_kwargs)
            finally:
                for hook in hooks:
                    hook.remove()
            return outputs

    def _autocast(self):
        if self.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self._device.type, dtype=_AUTOCAST[self.precision])

    def _model_hook(self, layer, name: str, outputs: dict):
        """A forward hook keeping ``layer``'s output in ``outputs[name]``: on the host, float32 when the forward pass
        ran in a lower precision."""
        if self.precision == "float32":
            return self.register_hook(layer, name, target_dict=outputs)

        def keep(_module, _inputs, output):
            outputs[name] = self._tensor_to_numpy(output.float() if output.dtype in _LOWER else output)
        return layer.register_forward_hook(keep)

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


_AUTOCAST = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_LOWER = (torch.bfloat16, torch.float16)
