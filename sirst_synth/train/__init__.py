"""The reference trainer and scorer (docs/method.md section 8): model, loss, data, training loop, CLI.

Importing this package does not import torch; its submodules ``model``, ``loss``, ``data``,
``predict``, ``checkpoint`` and ``loop`` do.
"""
