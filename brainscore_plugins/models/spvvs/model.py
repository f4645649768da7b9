"""scaling-primate-vvs checkpoints (Gokce & Schrimpf, 2024) as Brain-Score models.

Every model id and epoch checkpoint of the study is listed in brainscore_plugins/data/scaling_primate_vvs.csv;
this plugin only resolves an identifier there and builds it through the shared factory.
"""
# Brain-Score's plugin names: get_model (the PytorchWrapper), get_layers, get_bibtex; and the committed brain model
from brainscore_plugins.factory import activations_model as get_model  # noqa: F401
from brainscore_plugins.factory import brain_model as get_brain_model  # noqa: F401
from brainscore_plugins.factory import layers as get_layers  # noqa: F401

BIBTEX = """@article{gokce2024scalingprimatevvs,
      title={Scaling Laws for Task-Optimized Models of the Primate Visual Ventral Stream},
      author={Abdulkadir Gokce and Martin Schrimpf},
      year={2024},
      eprint={2411.05712},
      archivePrefix={arXiv},
      url={https://arxiv.org/abs/2411.05712},
}"""


def get_bibtex(name):
    return BIBTEX
