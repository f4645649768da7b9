"""humanlike-vits (Orhan, 2023): ViTs pretrained with MAE on human-like video, and their ImageNet-finetuned
versions, as Brain-Score models.

All 156 models are listed in brainscore_plugins/data/humanlike_vits.csv; this plugin only resolves an identifier
there and builds it through the shared factory. No region commitment is published for them: a model loads as a
committed brain model once ``brainscore-plugins commit <identifier>`` has written ``region_layer_map/<id>.json``
into this folder (``get_model`` / ``get_layers`` work without one).
"""
from brainscore_plugins import factory

BIBTEX = """@article{orhan2023scaling,
      title={Scaling may be all you need for achieving human-level object recognition capacity with human-like visual experience},
      author={A. Emin Orhan},
      year={2023},
      eprint={2308.03712},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2308.03712},
}"""


def get_model(name):
    """The activations model (``PytorchWrapper``) with the published weights and the author's eval preprocessing."""
    return factory.activations_model(name)


def get_layers(name):
    """The committed layers if a region map exists, else the candidate layers (blocks, ``norm``, ``fc_norm``)."""
    return factory.layers(name)


def get_bibtex(name):
    return BIBTEX


def get_brain_model(name):
    """The ``ModelCommitment`` with the computed region -> layer map; a clear error naming
    ``brainscore-plugins commit`` when there is none yet."""
    return factory.brain_model(name)
