"""The names of the layouts ``import`` reads and ``export`` writes, as plain tuples: no numpy, no
OpenCV, so the CLI builds its choices from them and ``sirst-synth --help`` stays fast. The readers
and writers of each are :data:`sirst_synth.interop.importers.READERS` and
:data:`sirst_synth.interop.exporters.EXPORTERS` (tests/interop check that the names match)."""

#: the layouts ``export --to`` and ``build --layout`` write, sorted
LAYOUTS = ("basicirstd", "coco", "dnanet", "folders", "mshnet", "points", "voc", "yolo")
#: the layouts ``import`` reads: benchmark releases as published, then the folder layouts
IMPORT_LAYOUTS = ("sirst", "sirst-v2", "irstd-1k", "basicirstd", "folders", "dnanet")
