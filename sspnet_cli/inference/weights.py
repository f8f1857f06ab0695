"""Where the model's weights come from: a path the user gives, or the default in ``weights/``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from sspnet_cli.errors import SSPNetError

DEFAULT_WEIGHTS_NAME = "sspnet_default.pt"
REPO_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


def default_weights_candidates() -> list[Path]:
    """The shipped default, beside the package (a checkout or editable install) or in ./weights."""
    return [REPO_WEIGHTS / DEFAULT_WEIGHTS_NAME, Path.cwd() / "weights" / DEFAULT_WEIGHTS_NAME]


def resolve_weights(weights: Union[str, Path, None]) -> Path:
    """The checkpoint to load. Without ``weights`` the shipped default is used; where it is
    missing (an install without the package data, a stripped checkout), a one-line error says what
    to pass (never a download)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.exists():
            raise SSPNetError(f"weights not found: {path}")
        return path
    for path in default_weights_candidates():
        if path.is_file():
            return path
    raise SSPNetError(
        f"the default model weights/{DEFAULT_WEIGHTS_NAME} is missing from this install; "
        "reinstall from a full checkout, or pass --weights PATH with a checkpoint from `sspnet train`"
    )


def find_default_weights() -> Optional[Path]:
    """The shipped default checkpoint, or None."""
    return next((p for p in default_weights_candidates() if p.is_file()), None)
