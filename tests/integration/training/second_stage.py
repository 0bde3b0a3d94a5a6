"""A stand-in second stage for the stage loop's test: the sft recipe again, which insists on
finding the first stage's result where the agent promises it (TRAINOPS_STAGE_INPUT)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from schemas.errors import UserError
from training.recipes.sft import SFTRecipe


class AfterSFT(SFTRecipe):
    def setup(self, resume_dir=None, on_phase=lambda p: None) -> None:
        given = Path(os.environ.get("TRAINOPS_STAGE_INPUT", "/nonexistent"))
        if not (given / "adapter_model.safetensors").exists():
            raise UserError(f"no first-stage adapter in TRAINOPS_STAGE_INPUT={given}")
        super().setup(resume_dir, on_phase)


if __name__ == "__main__":
    from training.recipes.runner import main

    sys.exit(main(AfterSFT))
