"""The people-facing edge: the /train grammar, Block Kit builders, the Bolt app and the CLI."""
