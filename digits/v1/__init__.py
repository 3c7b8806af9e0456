"""Generated from protos/digits/v1 by `make protos`; do not edit (tests/test_protos.py checks freshness)."""
