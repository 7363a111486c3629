"""Thin Hydra entry points: compose a config, then call plain functions of the package."""
