"""safenet-template: independent REINFORCE as a safenet algorithm plugin (name ``independent-reinforce``).

Keep this module light: safenet imports ``safenet_template.plugin`` (and so this package) every
time it lists plugins. The algorithm itself (and torch) is imported only when a run selects it.
"""
__version__ = "0.1.0"
