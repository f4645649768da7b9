"""Making our plugin folders visible to the installed ``brainscore_vision``.

Brain-Score finds a plugin only inside its own ``models/`` (``benchmarks/``) folder, by a literal
``model_registry['<id>']`` line in the plugin's ``__init__.py``. ``link`` puts a symbolic link to each of our plugin
folders there (idempotent; an existing foreign folder of the same name is never touched); ``unlink`` removes only
links that point into this package.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PLUGIN_TYPES = ("models", "benchmarks")


def our_plugins() -> dict[str, list[Path]]:
    """Plugin folders shipped in this package, per plugin type."""
    return {kind: sorted(p for p in (PACKAGE_DIR / kind).iterdir() if (p / "__init__.py").is_file())
            for kind in PLUGIN_TYPES}


def brainscore_dir() -> Path:
    import brainscore_vision
    return Path(brainscore_vision.__file__).resolve().parent


def link() -> list[str]:
    """Create the links; returns one line per plugin saying what was done."""
    report = []
    for kind, folders in our_plugins().items():
        for folder in folders:
            target = brainscore_dir() / kind / folder.name
            if target.is_symlink():
                if target.resolve() == folder:
                    report.append(f"ok       {kind}/{folder.name}")
                    continue
                target.unlink()  # a stale link, e.g. from an earlier checkout
            elif target.exists():
                raise FileExistsError(
                    f"{target} exists and is not our link: brainscore_vision ships a plugin of that name. "
                    f"Rename our plugin folder {folder} to resolve the clash.")
            target.symlink_to(folder, target_is_directory=True)
            report.append(f"linked   {kind}/{folder.name} -> {folder}")
    return report


def unlink() -> list[str]:
    report = []
    for kind in PLUGIN_TYPES:
        for entry in sorted((brainscore_dir() / kind).iterdir()):
            if entry.is_symlink() and PACKAGE_DIR in entry.resolve().parents:
                entry.unlink()
                report.append(f"unlinked {kind}/{entry.name}")
    return report


def is_linked() -> bool:
    return all((brainscore_dir() / kind / folder.name).resolve() == folder
               for kind, folders in our_plugins().items() for folder in folders)
