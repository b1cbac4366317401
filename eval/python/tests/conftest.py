"""Shared fixtures of the turboattn Python tests."""

import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
EMBEDDED_EVAL = REPO / "datasets" / "data" / "smollm2_eval.h5"


def half_tensor(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float16)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261201)


def turboattn_exe() -> pathlib.Path:
    """The CLI built by CMake: $TURBOATTN_EXE, else build/eval/turboattn of this checkout."""
    env = os.environ.get("TURBOATTN_EXE")
    path = pathlib.Path(env) if env else REPO / "build" / "eval" / "turboattn"
    if not path.is_file():
        if os.environ.get("TURBO_REQUIRE_CLI") == "1":
            pytest.fail(f"the turboattn CLI is not built at {path} (TURBO_REQUIRE_CLI=1)")
        pytest.skip(f"the turboattn CLI is not built at {path}; set TURBOATTN_EXE")
    return path
