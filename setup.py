"""Packaging glue that pyproject.toml cannot express: the top-level ``conf/`` folder (Hydra's
configuration, kept at the repository top level) ships inside the package as ``fault_diag/conf``
(``package_dir`` maps it), so that an installed wheel finds it (``fault_diag.paths.config_dir``).
Everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
# conf/ and each of its folders (model/, noise/, hydra/launcher/, ...) as fault_diag.conf[.*]
CONF_PACKAGES = ["fault_diag.conf"] + sorted(
    "fault_diag.conf." + ".".join(d.relative_to(HERE / "conf").parts)
    for d in (HERE / "conf").rglob("*")
    if d.is_dir() and not d.name.startswith((".", "__"))
)

setup(
    packages=[*find_packages(include=["fault_diag", "fault_diag.*"]), *CONF_PACKAGES],
    package_dir={"fault_diag.conf": "conf"},
    # here, not in pyproject.toml: a [tool.setuptools.package-data] table there replaces this one
    package_data={"fault_diag.data": ["*.csv"], **{name: ["*.yaml"] for name in CONF_PACKAGES}},
)
