"""omniactor: one vision-language agent for 2D GUIs and 3D embodied worlds.

Importing the package is light (numpy only); torch, transformers and environment
packages are imported by the modules that need them.
"""

__version__ = "0.1.0"
