"""nucseg: nuclei segmentation in H&E histopathology: a pretrained model, five networks under
leave-one-patient-out (and leave-one-data-set-out) validation, and trained models applied to
images and whole slides.

Packages by layer, bottom up (each imports only from its own layer and those below; checked by
tests/test_layers.py): `errors`, `config` (the one Config), `io` (atomic writes, the run lock),
`outputs` (where a run may write); `models` (the nets, their losses, loading); `data` (data
sets, targets, augmentation, tf.data) and `pretrained` (the shipped models); `postprocess`
(nucleus maps into nuclei, and the choice of its parameters) and `metrics`; `training` (fit,
resume, export); `inference` (engines, prediction, resolution, nuclei as objects, slides);
`study` (folds, lopo, lodo, evaluation, tables, figures); `bench`, `distributed` and `cli` on top."""

from nucseg.hardware import turn_on_onednn

# Before any nucseg module imports TensorFlow: on an AVX2-only CPU it then trains twice as fast.
turn_on_onednn()

__version__ = "0.3.0"  # as pyproject.toml's; tests/test_config.py checks that they agree
