"""Beam transforms (``transforms.beam``) over a pure core (``transforms.core``).

``transforms.core`` never imports apache_beam or kafka; ``transforms.kafka`` is the
Kafka edge; ``transforms.beam`` is thin glue that wires the two into DoFns.
"""
