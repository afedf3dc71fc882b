"""nucleiseg_lib: the helper library of the nucleiseg course.

Layers, low to high (a module imports only modules below it)::

    errors, metrics  ->  data  ->  model  ->  training  ->  inference  ->  viz / widgets  ->  report / cli
"""

__version__ = "0.1.0"
