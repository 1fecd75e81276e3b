"""The public API: every advertised name resolves to the object, never a same-named module."""

import importlib
import pkgutil
import types

import pytest

import insarexplore

PACKAGES = [
    "insarexplore",
    "insarexplore.data.io",
    "insarexplore.explore",
    "insarexplore.ssl",
    "insarexplore.models",
    "insarexplore.app",
    "insarexplore.data.synthetic",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_public_names_are_not_shadowed_by_submodules(package):
    mod = importlib.import_module(package)
    # import every submodule first: this is what shadows a lazy name by a module of that name
    for info in pkgutil.iter_modules(mod.__path__):
        if not info.name.startswith("_") and info.name != "__main__":
            importlib.import_module(f"{package}.{info.name}")
    for name in mod.__all__:
        if name == "__version__":
            continue
        value = getattr(mod, name)
        assert not isinstance(value, types.ModuleType), f"{package}.{name} is a module"


def test_version():
    assert insarexplore.__version__
