"""What runs on the GPU machine around the recipe: `python -m training.agent --spec URI`.

`main` reads the spec and ends with status.json; `plan` runs every run of a sweep and every stage,
each resuming from its own newest verified checkpoint, on every GPU; `launch` starts a recipe as
a child (torchrun on N GPUs) and relays stops to it (docs/multi-gpu.md); `runtime` keeps progress
fresh and obeys control.json and the deadline; `spot` watches for interruption notices; `sync`
moves checkpoints to and from the store; `command` runs a team's own script instead of a recipe.
"""
