"""A network that predicts Algonauts 2023 fMRI itself, as a Brain-Score model: the ``algonauts2023.*-direct``
benchmarks score its :meth:`FMRIPredictor.predict_fmri` on the held-out images without fitting anything.

Its predictions are in the challenge's group space: the union of the eight subjects' challenge vertices (fsaverage
order, lh then rh; 39,548 vertices), which :func:`.benchmark.subject_vertices` maps to one subject's vertices.
"""
from __future__ import annotations

import numpy as np
import torch
from brainscore_vision.model_interface import BrainModel
from tqdm.auto import tqdm

from .data import SUBJECTS

NSD_VISUAL_DEGREES = 8.4  # NSD images subtend 8.4 degrees of visual angle


class FMRIPredictor(BrainModel):
    """``network(images, subjects)`` -> group-space fMRI, with ``preprocessing`` (paths -> float32 batch)."""

    def __init__(self, identifier: str, network: torch.nn.Module, preprocessing, batch_size: int = 16):
        self._identifier, self.network, self.preprocessing = identifier, network.eval(), preprocessing
        self.batch_size = batch_size

    @property
    def identifier(self) -> str:
        return self._identifier

    def visual_degrees(self) -> float:
        return NSD_VISUAL_DEGREES

    def predict_fmri(self, paths, subject: str, progress: bool = True) -> np.ndarray:
        """Group-space predictions ``(len(paths), vertices)`` for ``subject`` (``subj01`` ... ``subj08``)."""
        if subject not in SUBJECTS:
            raise ValueError(f"Unknown subject {subject!r}; use one of {', '.join(SUBJECTS)}")
        device = next(self.network.parameters()).device
        index = torch.tensor([SUBJECTS.index(subject)], device=device)
        batches = []
        with torch.inference_mode():
            for start in tqdm(range(0, len(paths), self.batch_size), desc=f"{self.identifier} fMRI {subject}",
                              disable=not progress):
                images = torch.from_numpy(self.preprocessing(paths[start:start + self.batch_size])).to(device)
                batches.append(self.network(images, index.expand(len(images))).float().cpu().numpy())
        return np.concatenate(batches)

    def _not_visual(self, *args, **kwargs):
        raise NotImplementedError(
            f"{self.identifier} predicts Algonauts 2023 fMRI only (the algonauts2023.*-direct benchmarks); use "
            f"{self.identifier.rsplit('-', 1)[0]} for Brain-Score's region and behavior benchmarks")

    start_task = start_recording = look_at = _not_visual
