"""Model reports: which models (:mod:`~rs_image.report.catalog`), their parameters and fvcore multiply-adds
with the pinned counts cache (:mod:`~rs_image.report.counts`), table rows and their markdown/CSV/JSON writers
(:mod:`~rs_image.report.tables`), the accuracy-vs-cost plot (:mod:`~rs_image.report.plot`) and the model zoo
page with the README tables (:mod:`~rs_image.report.zoo_page`); the throughput and peak memory in those tables are
measured by :mod:`rs_image.benchmark.throughput`. ``rs-report`` (:mod:`rs_video.cli.model_report`) is the CLI.
Run reports: training curves from ``metrics.jsonl`` (:mod:`~rs_image.report.curves`, ``tools/plot_metrics.py``)
and the test's confusion-matrix figure (:mod:`~rs_image.report.confusion`), both drawn without pyplot
(:mod:`~rs_image.report.figure`); the engine calls them, they know nothing of the engine.

Import directions inside: catalog <- counts <- tables, zoo_page; plot stands alone;
figure <- curves, confusion.
Our models come from every family of :data:`rs_image.models.MODELS` (the video family once ``rs_video`` is
imported), each as a :class:`~rs_image.report.catalog.RegistrySource`.
"""
