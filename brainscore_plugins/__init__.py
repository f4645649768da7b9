"""brainscore-plugins: every checkpoint of public vision scaling studies as a Brain-Score model plugin.

    >>> from brainscore_plugins import create_model, list_models
    >>> model = create_model("spvvs_resnet18_imagenet_full")      # torch module with the published weights
"""
from .catalog import list_models, resolve  # noqa: F401


def create_model(name: str, pretrained: bool = True, progress: bool = True, **kwargs):
    """The torch model of a catalogued identifier, timm's keyword arguments accepted (see
    :func:`brainscore_plugins.factory.create_model`)."""
    from .factory import create_model as _create
    return _create(name, pretrained=pretrained, progress=progress, **kwargs)
