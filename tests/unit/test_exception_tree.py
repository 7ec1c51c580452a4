"""The one exception hierarchy: every public exception class of the project derives from
``EnrichError`` and is drawn in the tree of ``transforms.core.errors``' docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pipelines
import transforms
from transforms.core import errors
from transforms.core.errors import EnrichError


def _project_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for package in (transforms, pipelines):
        prefix = package.__name__ + "."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not name.startswith("_")
                ):
                    found[f"{module.__name__}.{name}"] = value
    return found


def test_every_public_exception_is_rooted_and_drawn() -> None:
    found = _project_exceptions()
    assert len(found) > 30  # the walk reached the modules
    # a class is drawn at the head of a tree line: "EnrichError  ..." or "│   ├── Name  ..."
    drawn = set(re.findall(r"^(?:[│ ]*[├└]── )?(\w+)(?=,|\s{2,})", errors.__doc__ or "", re.M))
    unrooted = sorted(path for path, cls in found.items() if not issubclass(cls, EnrichError))
    undrawn = sorted(path for path, cls in found.items() if cls.__name__ not in drawn)
    assert unrooted == []
    assert undrawn == []


def test_built_in_bases_are_kept_where_callers_catch_them() -> None:
    from pipelines.flink_jobs import OrphanError
    from pipelines.runner import FlinkNotReady, PrismNotInstalled
    from transforms.core.eval.golden import GoldenError

    assert issubclass(GoldenError, ValueError)
    assert issubclass(PrismNotInstalled, FileNotFoundError)
    assert issubclass(FlinkNotReady, RuntimeError)
    assert issubclass(OrphanError, RuntimeError)
