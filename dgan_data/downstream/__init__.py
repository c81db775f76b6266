"""Application code built on the public API, as a user's code would be: training a
segmentation model on streams or folders (``train``; its models in ``models``, batch
sources in ``batches``, run records in ``runtime``), reading real labeled folders
(``realdata``) and the toy-world demo (``demo``).

Kept free of imports so that ``import dgan_data.downstream.train`` loads only what it needs.
"""
