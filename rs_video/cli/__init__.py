"""The command-line tools, installed as console commands (``pip install .`` puts them on ``PATH``).

One command per tool, each ``rs-<what it does>``, rather than one command with subcommands: each maps to one
``tools/<name>.py`` (the thin form of a checkout, which SlowFast and detectron2 users know), its ``--help``
shows only its own options, and multi-process launchers take it as it is
(``torchrun --nproc_per_node 8 --no-python rs-train --cfg ...``, or ``-m rs_video.cli.train_net``).

=======================  ===================================  =====================================
command                  module                               checkout form
=======================  ===================================  =====================================
rs-train                 :mod:`.train_net`                    ``tools/train_net.py``
rs-test                  :mod:`.test_net`                     ``tools/test_net.py``
rs-predict               :mod:`.predict`                      ``tools/predict.py``
rs-extract-features      :mod:`.extract_features`             ``tools/extract_features.py``
rs-report                :mod:`.model_report`                 ``tools/model_report.py``
rs-plot-metrics          :mod:`.plot_metrics`                 ``tools/plot_metrics.py``
rs-export                :mod:`.export`                       ``tools/export.py``
rs-prepare-kinetics      :mod:`.prepare_kinetics`             ``tools/prepare_kinetics.py``
rs-convert-keras         :mod:`.convert_keras_weights`        ``tools/convert_keras_weights.py``
rs-convert-tf            :mod:`.convert_tf_checkpoint`        ``tools/convert_tf_checkpoint.py``
rs-benchmark-data        :mod:`.benchmark_data`               ``tools/benchmark_data.py``
rs-benchmark-inference   :mod:`.benchmark_inference`          ``tools/benchmark_inference.py``
rs-benchmark-trainer     :mod:`.benchmark_trainer`            ``tools/benchmark_trainer.py``
rs-gpu-check             :mod:`.gpu_check`                    ``tools/gpu_check.py`` (``tools/gpu_check.sh``)
rs-demo                  :mod:`.demo`                         ``tools/demo.py``
=======================  ===================================  =====================================

Importing this package registers the video and detection tasks and the shipped configs (``--cfg
kinetics/rs3d_50.yaml`` works from any folder; a real path wins), as every tool needs them. Only this
package prints; the library logs.
"""

import rs_video.task  # noqa: F401  (registers TASK video / detection and the shipped configs)
