"""The suite's Hydra launcher plugins (Hydra accepts launchers only from the ``hydra_plugins`` package)."""
