"""nucseg: nuclei segmentation in H&E histopathology, four networks under leave-one-patient-out
validation. Modules: config, data, download, folds, weights, augment, pipeline, models, losses,
metrics, postprocess, train, evaluate, export, predict, lopo, results, figures, bench, cli."""

__version__ = "0.1.0"
