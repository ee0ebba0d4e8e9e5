"""The reference trainer and scorer (docs/method.md section 8): model, loss, metrics, data, training loop,
checkpoints, precision, studies (``compare``). Its commands live in :mod:`sirst_synth.cli.train`.

Importing this package does not import torch; its submodules ``model``, ``loss``, ``data``,
``predict``, ``checkpoint`` and ``loop`` do.
"""
