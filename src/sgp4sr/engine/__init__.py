"""Training engine shared by every model: batching, fitting, full-ranking evaluation, checkpoints.

Kept as small separate pieces (``sequences``, ``trainer``, ``evaluate``,
``checkpoint``, ``context``, ``run``) instead of one trainer class, so each can
be tested and reused on its own.
"""
