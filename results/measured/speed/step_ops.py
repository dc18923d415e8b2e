"""Where a `cpu`-profile DIST training step's CPU time goes, by TensorFlow operation type: 50 steps
of model.fit on one synthetic batch (4 of 128 x 128, as the profile trains) traced by TensorFlow's
profiler after 30 steps of warm-up, then summed by xprof (the profiler's own reader; not a nucseg
dependency: install it beside, as below). Self time summed over threads, per step.

    .venv/bin/pip install --target /tmp/xprof --no-deps xprof
    PYTHONPATH=/tmp/xprof .venv/bin/python results/measured/speed/step_ops.py > results/measured/speed/step_ops_CPU.txt
"""

import collections
import glob
import json
import tempfile

import nucseg  # noqa: F401  first, as the nucseg command imports it: it has TensorFlow use oneDNN
import tensorflow as tf
from xprof.convert import raw_to_tool_data

from nucseg.config import Config
from nucseg.hardware import cpu_summary
from nucseg.models import build_model
from nucseg.training.optimizer import compile_model

STEPS = 50

config = Config.from_profile("cpu", arch="dist", data="../shared/data/tnbc")
model = compile_model(build_model(config), config, total_steps=config.steps)
images = tf.random.uniform((config.batch_size, config.crop, config.crop, 3)) * 255
targets = tf.random.uniform((config.batch_size, config.crop, config.crop, 2))  # distance and weight
batches = tf.data.Dataset.from_tensors((images, targets)).repeat()
model.fit(batches, steps_per_epoch=30, epochs=1, verbose=0)
log_dir = tempfile.mkdtemp()
tf.profiler.experimental.start(log_dir)
model.fit(batches, steps_per_epoch=STEPS, epochs=1, verbose=0)
tf.profiler.experimental.stop()

trace = glob.glob(f"{log_dir}/**/*.xplane.pb", recursive=True)
table, _ = raw_to_tool_data.xspace_to_tool_data(trace, "framework_op_stats", {})
columns = json.loads(table)[0]
names = [c["id"] for c in columns["cols"]]
by_type, by_op = collections.Counter(), collections.Counter()
for row in columns["rows"]:
    values = dict(zip(names, (c["v"] for c in row["c"])))
    if values["type"] != "IDLE":
        by_type[values["type"]] += values["total_self_time"] / STEPS / 1000
        by_op[f"{values['type']} {values['operation'].split('/', 2)[-1]}"] += values["total_self_time"] / STEPS / 1000
total = sum(by_type.values())
net = f"the `cpu` DIST ({config.base_filters}..{config.base_filters * 16} filters)"
print(f"# {cpu_summary()}; TensorFlow {tf.__version__}, {net}, batch {config.batch_size} of {config.crop}")
print(f"self time summed over threads: {total:.1f} ms a step")
for kind, ms in by_type.most_common(15):
    print(f"{ms:7.2f} ms {100 * ms / total:5.1f} %  {kind}")
print("the 15 costliest operations:")
for op, ms in by_op.most_common(15):
    print(f"{ms:7.2f} ms  {op}")
