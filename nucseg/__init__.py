"""nucseg: nuclei segmentation in H&E histopathology, five networks under leave-one-patient-out
validation, and trained models applied to images and whole slides.

Packages by domain: `data` (data sets, targets, augmentation, tf.data), `models` (the nets),
`training` (one resumable fold, optimiser, losses), `inference` (prediction, post-processing,
nuclei as objects, export, slides), `study` (folds, scores, tables, figures), `bench`
(benchmarks that print numbers); `config` (the one Config), `cli` (the `nucseg` command)."""

__version__ = "0.2.0"
