"""Shared code of the medxai tutorial series: one module per topic, imported by the notebooks.

Notebooks import modules, never names: ``from helpers import config, datasets``.
"""

__version__ = "0.1.0"
