"""The recipes, by stage name: what `JobSpec.stages` may list.

A recipe is a class with SFTRecipe's interface (training/recipes/sft.py):

    Recipe(spec, workdir, cache_dir)
    setup(resume_dir: Path | None, on_phase: Callable[[str], None]) -> None
    train(on_step: Callable[[step, loss, tokens], str | None]) -> "done" | a reason to stop
    save_checkpoint() -> Path   # collective under torchrun; rank 0 writes workdir/checkpoints/step-N/
    save_final() -> Path        # collective; rank 0 writes workdir/final/
    step, total_steps, loss, tokens_seen   # attributes the loop reports

and a module that ends with `main = lambda argv=None: runner.main(Recipe, argv)` under
`if __name__ == "__main__"`, so the agent can start it as `torchrun ... -m <module> --spec ...`
(training/recipes/runner.py does the rest: progress lines, control polling, the agreed stop, the
outcome file). Ranks must agree: anything a recipe decides between steps must be the same on
every rank (the runner's all_reduce does that for stops and checkpoints).

The agent runs `spec.stages` in order for each run; a stage whose final/ manifest is in the
store is skipped, an interrupted one resumes from its own checkpoints (schemas/checkpoints.py).
A later stage finds the earlier stage's final/ in TRAINOPS_STAGE_INPUT (a local folder).

No torch at import: the agent reads this registry before deciding how to start a stage.
"""

from __future__ import annotations

from schemas.errors import UserError

# stage name -> "module:Class". Add a stage here and in schemas.spec's docs; nothing else.
RECIPES: dict[str, str] = {
    "sft": "training.recipes.sft:SFTRecipe",
    "prep": "training.recipes.prep:PrepRecipe",
    "rl": "training.recipes.rl:RLRecipe",
    "eval": "training.recipes.eval:EvalRecipe",
}


def module_of(stage: str) -> str:
    """The module to start for a stage (`python -m <module>` / `torchrun -m <module>`)."""
    if stage not in RECIPES:
        raise UserError(f"unknown stage {stage!r}; known stages: {', '.join(sorted(RECIPES))}")
    return RECIPES[stage].split(":")[0]


def recipe_class(stage: str):
    """The recipe class for a stage (imports its module: torch)."""
    import importlib

    module, _, name = RECIPES[stage].partition(":") if stage in RECIPES else (module_of(stage), "", "")
    return getattr(importlib.import_module(module), name)
