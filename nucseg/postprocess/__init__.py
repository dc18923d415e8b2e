"""Post-processing: a net's nucleus map into nuclei (`instances`), and the choice of its
parameters on training tiles, saved beside the model as postprocess.json (`tuning`)."""
