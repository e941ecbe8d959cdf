"""The list of studies and running one by name (each study is a module of this package)."""

from __future__ import annotations

from pathlib import Path

from oodscope.errors import InputError
from oodscope.studies.alocc_epochs import ALOCC_EPOCHS
from oodscope.studies.autoencoder import AE_ERRORS, AE_LATENT, AE_RECONSTRUCTIONS
from oodscope.studies.base import Study, StudyOptions, write_outputs
from oodscope.studies.regression import REGRESSION_UNCERTAINTY


def _registry() -> dict[str, Study]:
    return {s.name: s for s in (AE_LATENT, AE_ERRORS, AE_RECONSTRUCTIONS, ALOCC_EPOCHS, REGRESSION_UNCERTAINTY)}


STUDIES: tuple[str, ...] = ("ae-latent", "ae-errors", "ae-reconstructions", "alocc-epochs", "regression-uncertainty")


def run_study(name: str, options: StudyOptions) -> list[Path]:
    """Run the study ``name`` and write its files into ``options.out``; returns the paths written.

    Raises:
        InputError: an unknown study or a bad option.
    """
    studies = _registry()
    if name not in studies:
        raise InputError(f"unknown study {name!r}; known: {', '.join(studies)}")
    if options.epochs is not None and options.epochs < 1:
        raise InputError(f"--epochs must be positive, got {options.epochs}")
    if not options.seeds:
        raise InputError("no seed given")
    Path(options.out).mkdir(parents=True, exist_ok=True)
    study = studies[name]
    return write_outputs(study, options, study.run(options))
