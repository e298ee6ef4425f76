"Shared pytest setup: the `slow` and `gpu` markers, and paths."
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    import torch
    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="gpu: CUDA not available")
    # The end-to-end pipeline (the longest file by far) first: `make test` runs the files on two workers, and the
    # others fill the second worker while it runs.
    items.sort(key=lambda item: item.path.name != "test_pipeline.py")
    for item in items:
        if item.get_closest_marker("slow") and not config.getoption("--runslow"): item.add_marker(skip_slow)
        if item.get_closest_marker("gpu") and not torch.cuda.is_available(): item.add_marker(skip_gpu)


@pytest.fixture
def root():
    return ROOT
