"""The trust-and-safety layer, pure: delimiting record values, detecting injection
markers, checking answers against per-field output rules. No Beam, no network (the
moderation call is an edge, in ``transforms.llm.moderation``)."""
