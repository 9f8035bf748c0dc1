"""The packages of the distribution (everything else is in pyproject.toml): the ``app`` package as found,
and the artwork of the top-level ``assets/`` folder inside it, as ``app.assets.icons``: importlib.resources
finds the same files in a checkout, a wheel, an sdist and the installed builds. (The code that finds them,
``app.assets``, stays in ``app/``: type checkers cannot follow a package mapped onto another folder.)"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["app", "app.*"]), "app.assets.icons"],
    package_dir={"app.assets.icons": "assets/icons"},
)
