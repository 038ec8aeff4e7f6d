"""Container tests build a multi-GB image: opt-in only (`pytest -m container` or `make container-test`)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "container" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="builds and runs the container image (minutes): select it with "
                                   "`pytest -m container`, or run `make container-test`")
    for item in items:
        if item.get_closest_marker("container"):
            item.add_marker(skip)
