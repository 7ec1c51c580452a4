"""Beam glue: thin DoFns over the pure core, and the composite that wires them."""
