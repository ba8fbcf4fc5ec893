"""Wire contract: generated protobuf/gRPC modules (never hand-edited) and channel helpers.

Regenerate with ``python -m raylite.protocol.generate``.
"""
