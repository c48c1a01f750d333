"""The drill and strength catalogue: TOML data files plus the loader that validates them.

The built-in files are registered through the same ``stridewise.catalogues`` entry point as
third-party catalogues (see ``pyproject.toml``); :func:`builtin_catalogue_path` is that hook.
The schema and the loader live in :mod:`drills.catalogue`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from planner.errors import CatalogueError


def builtin_catalogue_path() -> Path:
    """Return the folder holding the catalogue files shipped inside this package.

    Returns
    -------
    Path
        The ``catalogue`` folder of the installed ``drills`` package (a checkout, an editable
        install or an unpacked wheel alike).

    Raises
    ------
    CatalogueError
        If the package is imported from somewhere that is not a real folder (a zip archive),
        where the TOML files cannot be read as plain files.
    """
    # importlib.resources rather than __file__, so the data is found wherever the package is
    # installed; a wheel unpacks to site-packages, where the resource is a plain Path.
    resource = files(__name__).joinpath("catalogue")
    if not isinstance(resource, Path):
        raise CatalogueError(f"{resource}: the built-in catalogue is not a folder on disk")
    return resource
