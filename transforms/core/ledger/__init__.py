"""The cost ledger: what each call used (tokens, cached and reasoning apart), what it
cost at the provider's prices (cached-input price, batch and flex discounts), and what a
record used over all its attempts. Pure: no Beam, no network."""
