"""The RNG state in every checkpoint, so a resumed run draws the same dropout masks."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


class RngState(L.Callback):
    """Keeps the global torch RNG (dropout masks) in checkpoints, so resuming repeats the draws."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
