"""scaling-primate-vvs checkpoints (Gokce & Schrimpf, 2024) as Brain-Score models.

Every model id and epoch checkpoint of the study is listed in brainscore_plugins/data/scaling_primate_vvs.csv;
this plugin only resolves an identifier there and builds it through the shared factory.
"""
from brainscore_plugins import factory

BIBTEX = """@article{gokce2024scalingprimatevvs,
      title={Scaling Laws for Task-Optimized Models of the Primate Visual Ventral Stream},
      author={Abdulkadir Gokce and Martin Schrimpf},
      year={2024},
      eprint={2411.05712},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2411.05712},
}"""


def get_model(name):
    """The activations model (``PytorchWrapper``) with the checkpoint's weights and eval preprocessing."""
    return factory.activations_model(name)


def get_layers(name):
    return factory.layers(name)


def get_bibtex(name):
    return BIBTEX


def get_brain_model(name):
    """The ``ModelCommitment`` with the catalog's region -> layer map and behavioral readout layer."""
    return factory.brain_model(name)
