"""Ships the top-level ``conf/`` inside the wheel as ``hih/conf`` (the metadata lives in pyproject.toml).

``conf/`` stays at the repository root, where Hydra users expect it; a regular (non-editable) install
gets a copy so that the console scripts find their configs without the clone (hih.config.config_dir).
An editable install reads the repository's ``conf/`` directly and copies nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONF = Path(__file__).resolve().parent / "conf"


class BuildPyWithConf(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "hih" / "conf"
        if target.exists():
            shutil.rmtree(target)  # a stale copy from an earlier build must not keep deleted configs
        shutil.copytree(CONF, target, ignore=shutil.ignore_patterns("local", "__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithConf})
