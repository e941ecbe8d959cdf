"""Training machinery shared by the networks: seeding, devices, autocast and the precision of
scores, optimiser schedules and steps (:mod:`~oodscope.training.core`), epoch loops and batched
evaluation (:mod:`~oodscope.training.epochs`) and data-parallel training under ``torchrun``
(:mod:`~oodscope.training.distributed`)."""
