"""MMDetection config files (``.py`` read as an AST, ``.json``, ``.yaml``) and checkpoint metadata, executing
nothing: :mod:`.config`. Torch-free."""
