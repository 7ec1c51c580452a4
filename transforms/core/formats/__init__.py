"""Bytes on the wire: Avro framings, record codecs, envelopes, schema compatibility."""
