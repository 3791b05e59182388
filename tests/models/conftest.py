import pytest

from .tiny import tiny_qwen2_vl


@pytest.fixture(scope="module")
def dense_model():
    return tiny_qwen2_vl()
