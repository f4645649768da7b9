"""humanlike-vits (Orhan, 2023): ViTs pretrained with MAE on human-like video, and their ImageNet-finetuned
versions, as Brain-Score models.

All 156 models are listed in brainscore_plugins/data/humanlike_vits.csv; this plugin only resolves an identifier
there and builds it through the shared factory. No region commitment is published for them: a model loads as a
committed brain model once ``brainscore-plugins commit <identifier>`` has written ``region_layer_map/<id>.json``
into this folder (``get_model`` / ``get_layers`` work without one).
"""
# Brain-Score's plugin names: get_model (the PytorchWrapper), get_layers, get_bibtex; and the committed brain model
from brainscore_plugins.factory import activations_model as get_model  # noqa: F401
from brainscore_plugins.factory import brain_model as get_brain_model  # noqa: F401
from brainscore_plugins.factory import layers as get_layers  # noqa: F401

BIBTEX = """@article{orhan2023scaling,
      title={Scaling may be all you need for achieving human-level object recognition capacity with human-like visual experience},
      author={A. Emin Orhan},
      year={2023},
      eprint={2308.03712},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2308.03712},
}"""


def get_bibtex(name):
    return BIBTEX
