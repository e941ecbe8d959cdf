"""The experiments of the source works, one command each (``oodscope study NAME --out DIR``).

Sources: Hirokawa, "Anomaly detections using deep learning (II): 2D-convolutional variational
autoencoder" (n.d.); an anonymous blog post implementing ALOCC in Chainer on MNIST (author, title
and date not given; n.d.); Takahashi, "Deep learning: reliability of inference" (University of
Aizu lecture notes, n.d.).

* ``ae-latent`` (Hirokawa, figures 4 and 5): 2-D and 3-D latents of the convolutional AE and VAE
  for unseen MNIST images, coloured by digit;
* ``ae-errors`` (Hirokawa, figure 7): histograms of the VAE's reconstruction error on training
  images and on unseen images, and a close-up of the large errors;
* ``ae-reconstructions`` (Hirokawa, figures 6 and 8): unseen inputs and their reconstructions with
  a 64-d and a 3-d latent;
* ``alocc-epochs`` (the ALOCC blog post): ALOCC trained on the digit '1', tested on '1' (normal)
  versus '0' (anomalous): accuracy and F1 after every epoch, over several seeds;
* ``regression-uncertainty`` (Takahashi's lecture notes, figures 8.1 and 8.2): y = sin x + noise
  observed on (0, 2 pi), a deep ensemble of mean-variance networks: its aleatoric uncertainty
  against the true noise, and its epistemic uncertainty inside and outside the training range (no
  data set needed).

Each writes PNG figures, a CSV of the numbers drawn and a Markdown note (what was run, with the
measured numbers) into its output directory, which ``oodscope report DIR`` renders.
"""

from __future__ import annotations

from oodscope.studies.base import Study, StudyOptions
from oodscope.studies.catalogue import STUDIES, run_study

__all__ = ["STUDIES", "Study", "StudyOptions", "run_study"]
